"""Convergence from the situations a real cluster gets into: kubeadm replacing the Deployment, a rollback,
new certificates, hand edits. Each test drives the same steps the controller takes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from k2s_dns import converge, corefile, deployment, kube
from k2s_dns.desired import Desired
from tests.unit.fake_api import CA, CM, COREFILE, DEPLOY, DESIRED, FakeApi, b64

REPO = Path(__file__).resolve().parents[2]


def desired(api: FakeApi) -> Desired:
    return Desired.from_configmap(api.get(DESIRED))


def converge_fully(api: FakeApi, remove: bool = False, limit: int = 10) -> list[converge.Step]:
    steps = []
    for _ in range(limit):
        step = converge.next_step(api, desired(api), remove)
        steps.append(step)
        if not step.writes:
            return steps
        converge.execute(api, step)
    pytest.fail(f"no convergence after {limit} steps: {[s.reason for s in steps]}")


def volumes(api: FakeApi) -> set[str]:
    return {v["name"] for v in api.objects[DEPLOY]["spec"]["template"]["spec"].get("volumes", [])}


def kubeadm_replaces_deployment(api: FakeApi, original: dict) -> None:
    """What kubeadm's CreateOrUpdate does: its own Deployment, our additions gone, the Corefile kept."""
    fresh = copy.deepcopy(original)
    fresh["metadata"]["resourceVersion"] = api.objects[DEPLOY]["metadata"]["resourceVersion"]
    fresh["metadata"]["generation"] = api.objects[DEPLOY]["metadata"]["generation"] + 1
    api.objects[DEPLOY] = fresh


def test_converged_state_needs_no_write(api: FakeApi):
    converge_fully(api)
    step = converge.next_step(api, desired(api))
    assert step.action == converge.CONVERGED and not step.writes


def test_kubeadm_replacing_the_deployment_is_healed_in_one_write(api: FakeApi):
    original = copy.deepcopy(api.objects[DEPLOY])
    converge_fully(api)
    patched_corefile = api.corefile()
    kubeadm_replaces_deployment(api, original)
    steps = converge_fully(api)
    assert [s.action for s in steps] == [converge.UPDATE_DEPLOYMENT, converge.CONVERGED]
    assert "certificate mounts missing" in steps[0].reason
    assert deployment.CLIENT_VOLUME in volumes(api)
    assert api.corefile() == patched_corefile
    annotations = api.objects[DEPLOY]["spec"]["template"]["metadata"]["annotations"]
    assert annotations[deployment.COREFILE_ANNOTATION] == converge.sha256(patched_corefile)


def test_corefile_waits_for_the_mounts_rollout(api: FakeApi):
    api.hang_rollouts = True
    step = converge.next_step(api, desired(api))
    converge.execute(api, step)
    step = converge.next_step(api, desired(api))
    assert step.action == converge.WAIT
    assert "etcd" not in api.corefile()
    api.finish_rollouts()
    assert converge.next_step(api, desired(api)).action == converge.UPDATE_CONFIGMAP


def test_rollback_of_the_prefix_rewrites_the_block_and_restarts(api: FakeApi):
    converge_fully(api)
    api.set_desired(path="/skydns2")
    steps = converge_fully(api)
    assert [s.action for s in steps] == [converge.UPDATE_CONFIGMAP, converge.UPDATE_DEPLOYMENT, converge.CONVERGED]
    assert "path /skydns2" in api.corefile() and "path /skydns\n" not in api.corefile()
    api.set_desired(path="/skydns")
    converge_fully(api)
    assert "path /skydns\n" in api.corefile()


def test_zone_change_moves_the_block_and_the_fallthrough(api: FakeApi):
    converge_fully(api)
    api.set_desired(zone="apps.example")
    converge_fully(api)
    text = api.corefile()
    assert "etcd apps.example {" in text and "etcd cluster.local {" not in text
    converge_fully(api, remove=True)
    assert api.corefile() == COREFILE


def test_cache_switch_rewrites_the_zone_block_and_restarts(api: FakeApi):
    cache = "    cache 30 {\n        denial 9984 1 1\n    }\n"
    converge_fully(api)
    assert cache in api.corefile()
    api.set_desired(cacheZone=False)
    steps = converge_fully(api)
    assert [s.action for s in steps] == [converge.UPDATE_CONFIGMAP, converge.UPDATE_DEPLOYMENT, converge.CONVERGED]
    assert cache not in api.corefile() and "etcd cluster.local {" in api.corefile()
    api.set_desired(cacheZone=True)
    converge_fully(api)
    assert cache in api.corefile()
    converge_fully(api, remove=True)
    assert api.corefile() == COREFILE


def test_an_upgrade_replaces_the_fall_through_patch_of_earlier_releases(api: FakeApi):
    """A Corefile patched by an earlier release (etcd next to the kubernetes plugin, its fall-through, the
    narrowed cache line) gets the zone's own server block instead, and uninstall restores the original."""
    old = (REPO / "tests/unit/corefiles-fallthrough-patch/kubeadm-1.34.Corefile").read_text()
    assert (REPO / "tests/unit/corefiles/kubeadm-1.34.Corefile").read_text() == COREFILE
    api.objects[CM]["data"]["Corefile"] = old
    converge_fully(api)
    text = api.corefile()
    assert "# k2s-dns: +" not in text and "k2s-dns: replaced" not in text
    assert text.startswith("# BEGIN k2s-dns etcd block") and text.count("etcd cluster.local {") == 1
    converge_fully(api, remove=True)
    assert api.corefile() == COREFILE


def test_new_certificates_restart_coredns(api: FakeApi):
    converge_fully(api)
    before = api.objects[DEPLOY]["spec"]["template"]["metadata"]["annotations"][deployment.CERTIFICATES_ANNOTATION]
    api.objects[CA]["data"]["ca.crt"] = b64("a new CA")
    steps = converge_fully(api)
    assert steps[0].action == converge.UPDATE_DEPLOYMENT and "certificates changed" in steps[0].reason
    after = api.objects[DEPLOY]["spec"]["template"]["metadata"]["annotations"][deployment.CERTIFICATES_ANNOTATION]
    assert after != before


def test_missing_certificate_secret_stops_before_any_write(api: FakeApi):
    del api.objects[CA]
    with pytest.raises(RuntimeError, match="Secret kube-system/etcd-ca not found"):
        converge.next_step(api, desired(api))
    assert api.writes == []


def test_hand_edit_is_kept_and_uninstall_removes_only_ours(api: FakeApi):
    converge_fully(api)
    edited = api.corefile().replace(
        "    loop\n", "    hosts {\n        192.0.2.1 admin.example\n        fallthrough\n    }\n    loop\n"
    )
    api.objects[CM]["data"]["Corefile"] = edited
    converge_fully(api)
    assert "192.0.2.1 admin.example" in api.corefile()
    assert api.corefile().count("etcd cluster.local {") == 1
    converge_fully(api, remove=True)
    assert api.corefile() == COREFILE.replace(
        "    loop\n", "    hosts {\n        192.0.2.1 admin.example\n        fallthrough\n    }\n    loop\n"
    )


def test_removal_leaves_nothing_of_k2s_dns_in_the_deployment(api: FakeApi):
    original = copy.deepcopy(api.objects[DEPLOY])
    converge_fully(api)
    # The cluster-mode renewal's restart stamp must go too.
    api.objects[DEPLOY]["spec"]["template"]["metadata"]["annotations"][deployment.ROTATED_ANNOTATION] = "now"
    converge_fully(api, remove=True)
    assert api.objects[DEPLOY]["spec"] == original["spec"]
    assert api.objects[DEPLOY]["metadata"].get("annotations") == original["metadata"].get("annotations")


def test_without_tls_nothing_is_mounted(api: FakeApi):
    api.set_desired(tls=False, endpoints=["http://etcd.example:2379"], hostAliases=[])
    converge_fully(api)
    assert deployment.CLIENT_VOLUME not in volumes(api)
    assert "tls " not in api.corefile() and "endpoint http://etcd.example:2379" in api.corefile()


def test_discovered_endpoints_come_from_the_secret(api: FakeApi):
    from k2s_dns import kube

    path = kube.secret_path("k2s-dns", "k2s-dns-etcd-endpoints")
    api.objects[path] = {"metadata": {"resourceVersion": "1"}, "data": {"ETCD_URLS": b64("https://172.18.0.2:2379")}}
    api.set_desired(endpoints=[], endpointsSecret="k2s-dns/k2s-dns-etcd-endpoints", hostAliases=[])
    converge_fully(api)
    assert "endpoint https://172.18.0.2:2379" in api.corefile()


NODELOCAL = (Path(__file__).parent / "corefiles" / "node-local-dns" / "iptables-mode.Corefile").read_text()
NODELOCAL_PATH = kube.configmap_path("kube-system", "node-local-dns")


def with_nodelocal(api: FakeApi) -> None:
    api.objects[NODELOCAL_PATH] = {
        "metadata": {"name": "node-local-dns", "resourceVersion": "1"},
        "data": {"Corefile": NODELOCAL},
    }


def test_nodelocal_dns_forwards_a_zone_outside_the_cluster_domain(api: FakeApi):
    with_nodelocal(api)
    api.set_desired(zone="apps.k2s.local")
    steps = converge_fully(api)
    assert "node-local-dns: forward apps.k2s.local to CoreDNS" in [s.reason for s in steps]
    assert corefile.nodelocal_is_patched(api.objects[NODELOCAL_PATH]["data"]["Corefile"])
    converge_fully(api, remove=True)
    assert api.objects[NODELOCAL_PATH]["data"]["Corefile"] == NODELOCAL


def test_nodelocal_dns_is_left_alone_for_the_cluster_domain(api: FakeApi):
    with_nodelocal(api)
    converge_fully(api)
    assert NODELOCAL_PATH not in api.writes


def test_without_nodelocal_dns_nothing_is_needed(api: FakeApi):
    api.set_desired(zone="apps.k2s.local")
    assert converge_fully(api)[-1].action == converge.CONVERGED
