"""The hook's apply/remove flows against an in-memory API server."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from k2s_dns import deployment, hook, kube

COREFILE = (Path(__file__).parent / "corefiles" / "kubeadm-1.34.Corefile").read_text()
CM = kube.configmap_path("kube-system", "coredns")
DEPLOY = kube.deployment_path("kube-system", "coredns")
SVC = kube.service_path("k2s-dns", "k2s-dns-etcd")


class FakeApi:
    """Stores objects by path; PUT enforces resourceVersion like the API server."""

    def __init__(self, objects: dict[str, dict]):
        self.objects = copy.deepcopy(objects)
        self.writes: list[str] = []
        self.conflicts: dict[str, int] = {}

    def get(self, path: str) -> dict:
        if path not in self.objects:
            raise kube.ApiError(404, f"{path} not found")
        return copy.deepcopy(self.objects[path])

    def put(self, path: str, body: dict) -> dict:
        current = self.objects[path]
        if self.conflicts.get(path):
            self.conflicts[path] -= 1
            current["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise kube.ApiError(409, "the object has been modified")
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        if "status" in current:  # a Deployment: the controller rolls out at once
            if body["spec"] != current["spec"]:
                body["metadata"]["generation"] = current["metadata"]["generation"] + 1
            replicas = body["spec"]["replicas"]
            body["status"] = {
                "observedGeneration": body["metadata"]["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas,
                "availableReplicas": replicas,
            }
        self.objects[path] = body
        self.writes.append(path)
        return copy.deepcopy(body)


@pytest.fixture
def api(coredns_deployment: dict) -> FakeApi:
    deploy = copy.deepcopy(coredns_deployment)
    deploy["metadata"].update({"resourceVersion": "20", "generation": 1})
    deploy["status"] = {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
    return FakeApi(
        {
            CM: {"metadata": {"name": "coredns", "resourceVersion": "10"}, "data": {"Corefile": COREFILE}},
            DEPLOY: deploy,
            SVC: {"metadata": {"name": "k2s-dns-etcd", "resourceVersion": "1"}, "spec": {"clusterIP": "10.96.0.50"}},
        }
    )


APPLY = [
    "apply",
    "--zone=cluster.local",
    "--endpoint=https://k2s-dns-etcd.k2s-dns.svc.cluster.local:2379",
    "--host-alias=k2s-dns-etcd.k2s-dns.svc.cluster.local=k2s-dns/k2s-dns-etcd",
    "--timeout=5",
]


def corefile_of(api: FakeApi) -> str:
    return api.objects[CM]["data"]["Corefile"]


def test_apply_patches_corefile_and_mounts_certificates(api):
    assert hook.main(APPLY, api) == 0
    text = corefile_of(api)
    assert "etcd cluster.local {" in text and "tls /etc/k2s-dns/etcd-client/tls.crt" in text
    pod = api.objects[DEPLOY]["spec"]["template"]
    assert {v["name"] for v in pod["spec"]["volumes"]} == {"config-volume", "k2s-dns-etcd-client", "k2s-dns-etcd-ca"}
    assert pod["spec"]["hostAliases"] == [{"ip": "10.96.0.50", "hostnames": ["k2s-dns-etcd.k2s-dns.svc.cluster.local"]}]
    assert pod["metadata"]["annotations"][deployment.COREFILE_ANNOTATION] == hook.sha256(text)
    assert api.objects[CM]["metadata"]["annotations"][hook.ORIGINAL_ANNOTATION] == COREFILE


def test_mounts_come_before_the_corefile(api):
    hook.main(APPLY, api)
    assert api.writes[:2] == [DEPLOY, CM]


def test_apply_twice_writes_nothing_the_second_time(api):
    hook.main(APPLY, api)
    writes = len(api.writes)
    assert hook.main(APPLY, api) == 0
    assert len(api.writes) == writes
    assert corefile_of(api).count("etcd cluster.local {") == 1


def test_remove_restores_both_objects_exactly(api):
    before = copy.deepcopy(api.objects)
    hook.main(APPLY, api)
    assert hook.main(["remove", "--timeout=5"], api) == 0
    assert api.objects[CM]["data"] == before[CM]["data"]
    assert "annotations" not in api.objects[CM]["metadata"]
    assert api.objects[DEPLOY]["spec"] == before[DEPLOY]["spec"]


def test_remove_after_someone_else_edited_keeps_their_edit(api):
    hook.main(APPLY, api)
    api.objects[CM]["data"]["Corefile"] = corefile_of(api).replace("cache 30 {", "cache 45 {")
    hook.main(["remove", "--timeout=5"], api)
    assert corefile_of(api) == COREFILE.replace("cache 30 {", "cache 45 {")


def test_reapply_after_kubeadm_upgrade_rewrote_the_corefile(api):
    hook.main(APPLY, api)
    upgraded = COREFILE.replace("loadbalance", "loadbalance\n    # kubeadm v1.35")
    api.objects[CM]["data"]["Corefile"] = upgraded  # kubeadm upgrade writes its own Corefile
    hook.main(APPLY, api)
    assert corefile_of(api).count("etcd cluster.local {") == 1
    hook.main(["remove", "--timeout=5"], api)
    assert corefile_of(api) == upgraded


def test_conflicting_write_is_retried(api):
    api.conflicts[CM] = 2
    assert hook.main(APPLY, api) == 0
    assert "etcd cluster.local {" in corefile_of(api)


def test_unparsable_corefile_changes_nothing_and_fails(api, capsys):
    api.objects[CM]["data"]["Corefile"] = ".:53 {\n    kubernetes cluster.local {\n"
    before = copy.deepcopy(api.objects)
    assert hook.main(APPLY, api) == 1
    assert api.objects == before
    assert "refusing to change the Corefile" in capsys.readouterr().err


def test_missing_service_for_host_alias_fails_before_any_write(api, capsys):
    del api.objects[SVC]
    assert hook.main(APPLY, api) == 1
    assert api.writes == []
    assert "not found" in capsys.readouterr().err


def test_apply_without_endpoint_is_a_usage_error(api):
    assert hook.main(["apply"], api) == 2


def test_rollout_timeout_is_reported():
    class Stuck:
        def get(self, path):
            return {"metadata": {"generation": 2}, "spec": {"replicas": 1}, "status": {"observedGeneration": 1}}

    ticks = iter(range(100))
    with pytest.raises(TimeoutError, match="not complete"):
        kube.wait_for_rollout(Stuck(), DEPLOY, timeout=3, clock=lambda: next(ticks), sleep=lambda s: None)
