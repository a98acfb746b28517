"""The hook Jobs' apply/remove flows against an in-memory API server."""

from __future__ import annotations

import copy

import pytest

from k2s_dns import converge, deployment, hook, kube
from tests.unit.fake_api import CM, CONTROLLER, COREFILE, DEPLOY, DESIRED, SVC, FakeApi

APPLY = ["apply", "--desired=k2s-dns/k2s-dns-coredns-desired", "--timeout=5"]
REMOVE = ["remove", "--desired=k2s-dns/k2s-dns-coredns-desired", "--timeout=5"]


def test_apply_patches_corefile_and_mounts_certificates(api: FakeApi):
    assert hook.main(APPLY, api) == 0
    text = api.corefile()
    assert "etcd cluster.local {" in text and "tls /etc/k2s-dns/etcd-client/tls.crt" in text
    pod = api.objects[DEPLOY]["spec"]["template"]
    assert {v["name"] for v in pod["spec"]["volumes"]} == {"config-volume", "k2s-dns-etcd-client", "k2s-dns-etcd-ca"}
    assert pod["spec"]["hostAliases"] == [{"ip": "10.96.0.50", "hostnames": ["k2s-dns-etcd.k2s-dns.svc.cluster.local"]}]
    assert pod["metadata"]["annotations"][deployment.COREFILE_ANNOTATION] == converge.sha256(text)
    assert api.objects[CM]["metadata"]["annotations"][converge.ORIGINAL_ANNOTATION] == COREFILE


def test_mounts_come_before_the_corefile_and_the_restart_after_it(api: FakeApi):
    hook.main(APPLY, api)
    assert api.writes == [DEPLOY, CM, DEPLOY]


def test_apply_twice_writes_nothing_the_second_time(api: FakeApi):
    hook.main(APPLY, api)
    writes = len(api.writes)
    assert hook.main(APPLY, api) == 0
    assert len(api.writes) == writes
    assert api.corefile().count("etcd cluster.local {") == 1


def test_remove_restores_both_objects_exactly(api: FakeApi):
    before = copy.deepcopy(api.objects)
    hook.main(APPLY, api)
    assert hook.main(REMOVE, api) == 0
    assert api.objects[CM]["data"] == before[CM]["data"]
    assert "annotations" not in api.objects[CM]["metadata"]
    assert api.objects[DEPLOY]["spec"] == before[DEPLOY]["spec"]


def test_remove_writes_the_corefile_before_the_mounts(api: FakeApi):
    hook.main(APPLY, api)
    api.writes.clear()
    hook.main(REMOVE, api)
    assert api.writes == [CM, DEPLOY]


def test_remove_stops_the_controller_first(api: FakeApi):
    hook.main(APPLY, api)
    api.writes.clear()
    args = [*REMOVE, "--stop-controller=k2s-dns/k2s-dns-controller", "--controller-selector=a=b"]
    assert hook.main(args, api) == 0
    assert api.writes[0] == CONTROLLER
    assert api.objects[CONTROLLER]["spec"]["replicas"] == 0


def test_remove_waits_for_controller_pods_to_be_gone(api: FakeApi):
    api.objects["pods"] = [{"metadata": {"name": "k2s-dns-controller-abc"}}]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            api.objects["pods"] = []

    hook.stop_controller(api, "k2s-dns/k2s-dns-controller", "a=b", timeout=60, sleep=sleep)
    assert len(sleeps) == 3


def test_remove_without_a_controller_deployment_still_works(api: FakeApi):
    del api.objects[CONTROLLER]
    hook.main(APPLY, api)
    assert hook.main([*REMOVE, "--stop-controller=k2s-dns/k2s-dns-controller", "--controller-selector=a=b"], api) == 0
    assert api.corefile() == COREFILE


def test_remove_after_someone_else_edited_keeps_their_edit(api: FakeApi):
    hook.main(APPLY, api)
    api.objects[CM]["data"]["Corefile"] = api.corefile().replace("cache 30 {", "cache 45 {")
    hook.main(REMOVE, api)
    assert api.corefile() == COREFILE.replace("cache 30 {", "cache 45 {")


def test_reapply_after_kubeadm_upgrade_rewrote_the_corefile(api: FakeApi):
    hook.main(APPLY, api)
    upgraded = COREFILE.replace("loadbalance", "loadbalance\n    # kubeadm v1.35")
    api.objects[CM]["data"]["Corefile"] = upgraded  # kubeadm upgrade writes its own Corefile
    hook.main(APPLY, api)
    assert api.corefile().count("etcd cluster.local {") == 1
    hook.main(REMOVE, api)
    assert api.corefile() == upgraded


def test_conflicting_write_is_retried(api: FakeApi):
    api.conflicts[CM] = 2
    assert hook.main(APPLY, api) == 0
    assert "etcd cluster.local {" in api.corefile()


def test_unparsable_corefile_changes_nothing_and_fails(api: FakeApi, capsys):
    api.objects[CM]["data"]["Corefile"] = ".:53 {\n    kubernetes cluster.local {\n"
    before = copy.deepcopy(api.objects)
    assert hook.main(APPLY, api) == 1
    assert api.objects == before
    assert "refusing to change the Corefile" in capsys.readouterr().err


def test_missing_service_for_host_alias_fails_before_any_write(api: FakeApi, capsys):
    del api.objects[SVC]
    assert hook.main(APPLY, api) == 1
    assert api.writes == []
    assert "Service k2s-dns/k2s-dns-etcd not found" in capsys.readouterr().err


def test_missing_desired_state_names_the_configmap(api: FakeApi, capsys):
    api.objects[DESIRED]["data"] = {}
    assert hook.main(APPLY, api) == 1
    assert "k2s-dns/k2s-dns-coredns-desired key desired.json is missing" in capsys.readouterr().err


def test_desired_is_required(api: FakeApi):
    with pytest.raises(SystemExit):
        hook.main(["apply"], api)


def test_rollout_that_never_finishes_times_out_with_the_reason(api: FakeApi):
    api.hang_rollouts = True
    ticks = iter(range(100))
    with pytest.raises(TimeoutError, match="waiting for the CoreDNS rollout with the certificate mounts"):
        hook.run(api, hook_desired(api), remove=False, timeout=3, sleep=lambda s: None, clock=lambda: next(ticks))
    assert "etcd" not in api.corefile(), "the Corefile must not name certificates before they are mounted"


def hook_desired(api: FakeApi):
    from k2s_dns.desired import Desired

    return Desired.from_configmap(api.get(DESIRED))


def test_update_with_retry_gives_up_after_repeated_conflicts(api: FakeApi):
    api.conflicts[CM] = 10
    with pytest.raises(kube.ApiError, match="409"):
        kube.update_with_retry(api, CM, lambda cm: cm, attempts=3)
