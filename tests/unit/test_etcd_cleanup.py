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


OURS = {"k2s-dns.io/owner": "dns/k2s-dns"}


class FakeApi:
    """Secrets by path with their metadata; DELETE honours the preconditions."""

    def __init__(self, existing: dict[str, dict]):
        self.existing = {
            path: {"metadata": {"uid": f"uid-{i}", "resourceVersion": "3", **meta}}
            for i, (path, meta) in enumerate(existing.items())
        }
        self.deleted: list[str] = []

    def get(self, path):
        if path not in self.existing:
            raise kube.ApiError(404, "not found")
        return json.loads(json.dumps(self.existing[path]))

    def request(self, method, path, body=None):
        assert method == "DELETE"
        if path not in self.existing:
            raise kube.ApiError(404, "gone")
        meta = self.existing[path]["metadata"]
        assert body["preconditions"] == {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}
        del self.existing[path]
        self.deleted.append(path)
        return {}


def secret_args(*names: str) -> list[str]:
    return ["--owner=k2s-dns", "--release=dns/k2s-dns", *(f"--delete-secret={n}" for n in names)]


def test_secrets_are_deleted_and_missing_ones_are_fine():
    api = FakeApi({"/api/v1/namespaces/kube-system/secrets/etcd-ca": {"annotations": OURS}})
    args = secret_args("kube-system/etcd-ca", "kube-system/etcd-client-for-core-dns")
    assert etcd_cleanup.main(args, client=api, etcd=FakeEtcd([])) == 0
    assert api.deleted == ["/api/v1/namespaces/kube-system/secrets/etcd-ca"]


@pytest.mark.parametrize(
    ("meta", "deleted"),
    [
        ({"annotations": OURS}, True),
        # Written by the chart before the owner annotation: the labels name the release.
        ({"labels": {"app.kubernetes.io/part-of": "k2s-dns", "app.kubernetes.io/instance": "k2s-dns"}}, True),
        ({}, False),  # made by somebody else (K2s's scripts)
        ({"annotations": {"k2s-dns.io/owner": "other/k2s-dns"}}, False),  # another release of that name
        ({"labels": {"app.kubernetes.io/part-of": "k2s-dns", "app.kubernetes.io/instance": "other"}}, False),
    ],
    ids=["annotated", "labelled-by-an-earlier-version", "unlabelled", "other-namespace", "other-release"],
)
def test_only_this_releases_secrets_are_deleted(meta, deleted, capsys):
    path = "/api/v1/namespaces/kube-system/secrets/etcd-ca"
    api = FakeApi({path: meta})
    assert etcd_cleanup.main(secret_args("kube-system/etcd-ca"), client=api, etcd=FakeEtcd([])) == 0
    assert api.deleted == ([path] if deleted else [])
    if not deleted:
        assert "kept Secret kube-system/etcd-ca: it belongs to" in capsys.readouterr().out


class BrokenEtcd(FakeEtcd):
    def records(self, prefix):
        raise etcd_gateway.GatewayError(503, "etcdserver: request timed out")


def test_secrets_are_kept_when_the_records_could_not_be_deleted(capsys):
    # The retry (helm uninstall again) must still be able to authenticate with them.
    path = "/api/v1/namespaces/dns/secrets/k2s-dns-external-dns-etcd-client"
    api = FakeApi({path: {"annotations": OURS}})
    args = secret_args("dns/k2s-dns-external-dns-etcd-client")
    assert etcd_cleanup.main(args, client=api, etcd=BrokenEtcd(list(OWNED_RECORDS))) == 1
    assert api.deleted == [] and path in api.existing
    err = capsys.readouterr().err
    assert "cannot clean etcd" in err and "kept the Secrets" in err


def test_secrets_go_only_after_the_records():
    order: list[str] = []

    class Etcd(FakeEtcd):
        def delete(self, key):
            order.append(f"record {key}")
            super().delete(key)

    class Api(FakeApi):
        def request(self, method, path, body=None):
            order.append(f"secret {path.rsplit('/', 1)[1]}")
            return super().request(method, path, body)

    api = Api({"/api/v1/namespaces/dns/secrets/client": {"annotations": OURS}})
    etcd = Etcd(list(OWNED_RECORDS))
    assert etcd_cleanup.main([*secret_args("dns/client"), "--settle=0"], client=api, etcd=etcd) == 0
    assert order == ["record /skydns/local/cluster/app/1", "secret client"]


def test_deleting_secrets_needs_the_release():
    with pytest.raises(SystemExit):
        etcd_cleanup.main(["--owner=x", "--delete-secret=kube-system/etcd-ca"], etcd=FakeEtcd([]))


def test_existing_secret_mode_deletes_the_records_and_no_secret():
    # etcd.cluster.existingSecret: the Job gets the user's Secret as its credentials and no --delete-secret.
    etcd = FakeEtcd(list(OWNED_RECORDS))
    assert etcd_cleanup.main(["--owner=k2s-dns", "--settle=0"], etcd=etcd) == 0
    assert etcd.deleted == ["/skydns/local/cluster/app/1"]


OWNED = [kv("/skydns/local/cluster/app/1", {"host": "192.0.2.1", "owner": "k2s-dns"})]
OWNED_RECORDS = OWNED


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
