"""Cluster-mode uninstall deletes only the records this release owns."""

from __future__ import annotations

import base64
import json

import pytest

from k2s_dns import etcd_cleanup, etcd_gateway, kube


def kv(key: str, value) -> dict:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return {"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(raw).decode()}


class FakeEtcd:
    def __init__(self, kvs):
        self.kvs = kvs
        self.deleted: list[str] = []
        self.ranges: list[str] = []

    def records(self, prefix):
        self.ranges.append(prefix)
        return self.kvs

    def delete(self, key):
        self.deleted.append(key)
        encoded = base64.b64encode(key.encode()).decode()
        self.kvs = [kv for kv in self.kvs if kv["key"] != encoded]


class RewritingEtcd(FakeEtcd):
    """A writer that puts records back the first `times` times they are deleted (a running ExternalDNS)."""

    def __init__(self, kvs, times):
        super().__init__(kvs)
        self.original, self.times = list(kvs), times

    def delete(self, key):
        super().delete(key)
        if self.times > 0 and not self.kvs:
            self.times -= 1
            self.kvs = list(self.original)


def test_range_end_covers_exactly_the_prefix():
    assert base64.b64decode(etcd_gateway.prefix_range_end("/skydns/")) == b"/skydns0"


def test_only_owned_records_are_deleted():
    etcd = FakeEtcd(
        [
            kv("/skydns/local/cluster/app/1", {"host": "192.0.2.1", "owner": "k2s-dns"}),
            kv("/skydns/local/cluster/app/2", {"text": "heritage=external-dns", "owner": "k2s-dns"}),
            kv("/skydns/local/cluster/other", {"host": "192.0.2.2", "owner": "someone-else"}),
            kv("/skydns/local/cluster/manual", {"host": "192.0.2.3"}),
            kv("/skydns/local/cluster/junk", b"not json"),
        ]
    )
    assert etcd_cleanup.main(["--owner=k2s-dns", "--prefix=/skydns", "--settle=0"], etcd=etcd) == 0
    assert etcd.ranges == ["/skydns", "/skydns"]
    assert etcd.deleted == ["/skydns/local/cluster/app/1", "/skydns/local/cluster/app/2"]


class FakeApi:
    def __init__(self, existing):
        self.existing = set(existing)
        self.deleted = []

    def request(self, method, path, body=None):
        assert method == "DELETE"
        if path not in self.existing:
            raise kube.ApiError(404, "gone")
        self.deleted.append(path)
        return {}


def test_secrets_are_deleted_and_missing_ones_are_fine():
    api = FakeApi({"/api/v1/namespaces/kube-system/secrets/etcd-ca"})
    args = ["--owner=x", "--delete-secret=kube-system/etcd-ca", "--delete-secret=kube-system/etcd-client-for-core-dns"]
    assert etcd_cleanup.main(args, client=api, etcd=FakeEtcd([])) == 0
    assert api.deleted == ["/api/v1/namespaces/kube-system/secrets/etcd-ca"]


OWNED = [kv("/skydns/local/cluster/app/1", {"host": "192.0.2.1", "owner": "k2s-dns"})]


def test_records_written_back_are_deleted_again():
    etcd = RewritingEtcd(list(OWNED), times=2)
    assert etcd_cleanup.delete_owned(etcd, "/skydns", "k2s-dns", settle=0, sleep=lambda _: None) == 3
    assert etcd.kvs == []


def test_a_writer_that_never_stops_is_an_error():
    etcd = RewritingEtcd(list(OWNED), times=100)
    with pytest.raises(ValueError, match="keep reappearing"):
        etcd_cleanup.delete_owned(etcd, "/skydns", "k2s-dns", settle=0, sleep=lambda _: None)
    assert etcd_cleanup.main(["--owner=k2s-dns", "--settle=0"], etcd=RewritingEtcd(list(OWNED), times=100)) == 1


class DeploymentApi:
    def __init__(self, replicas=1, exists=True):
        self.deploy = {
            "metadata": {"name": "x", "generation": 1, "resourceVersion": "1"},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas},
        }
        self.exists = exists
        self.puts = 0

    def get(self, path):
        if not self.exists:
            raise kube.ApiError(404, "not found")
        assert path == "/apis/apps/v1/namespaces/dns/deployments/k2s-dns-external-dns"
        return json.loads(json.dumps(self.deploy))

    def put(self, path, body):
        self.puts += 1
        # The controller removes the pod at once here; the real one does it while the hook waits.
        body["metadata"]["generation"] += 1
        body["status"] = {"observedGeneration": body["metadata"]["generation"]}
        self.deploy = body
        return body


@pytest.mark.parametrize(("replicas", "puts"), [(1, 1), (0, 0)])
def test_external_dns_is_scaled_to_zero_before_cleaning(replicas, puts):
    api = DeploymentApi(replicas)
    etcd_cleanup.stop_deployment(api, "dns/k2s-dns-external-dns", timeout=5, sleep=lambda _: None)
    assert api.deploy["spec"]["replicas"] == 0
    assert api.puts == puts


def test_a_missing_external_dns_is_fine():
    etcd_cleanup.stop_deployment(DeploymentApi(exists=False), "dns/k2s-dns-external-dns", timeout=5)
