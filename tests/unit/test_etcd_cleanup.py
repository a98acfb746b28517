"""Cluster-mode uninstall deletes only the records this release owns."""

from __future__ import annotations

import base64
import json

from k2s_dns import etcd_cleanup, kube


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


def test_range_end_covers_exactly_the_prefix():
    assert base64.b64decode(etcd_cleanup.prefix_range_end("/skydns/")) == b"/skydns0"


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
    assert etcd_cleanup.main(["--owner=k2s-dns", "--prefix=/skydns"], etcd=etcd) == 0
    assert etcd.ranges == ["/skydns"]
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
