"""Pure edits of the CoreDNS Deployment."""

from __future__ import annotations

import copy

import pytest

from k2s_dns import deployment
from k2s_dns.deployment import EtcdClientMount


@pytest.fixture
def coredns(coredns_deployment: dict) -> dict:
    return coredns_deployment


MOUNT = EtcdClientMount(
    "etcd-client-for-core-dns", "etcd-ca", "coredns", (("10.96.0.50", ("etcd.k2s-dns.svc",)),), pre_stop_sleep=5
)


def test_add_mounts_both_secrets_and_the_host_alias(coredns):
    patched = deployment.add_etcd_client(coredns, MOUNT)
    pod = patched["spec"]["template"]["spec"]
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {"k2s-dns-etcd-client": "etcd-client-for-core-dns", "k2s-dns-etcd-ca": "etcd-ca"}
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert {"/etc/coredns", "/etc/k2s-dns/etcd-client", "/etc/k2s-dns/etcd-ca"} == mounts
    assert pod["hostAliases"] == [{"ip": "10.96.0.50", "hostnames": ["etcd.k2s-dns.svc"]}]
    assert MOUNT.tls_files[0].startswith("/etc/k2s-dns/etcd-client/")


def test_add_is_idempotent_and_does_not_modify_its_input(coredns):
    before = copy.deepcopy(coredns)
    once = deployment.add_etcd_client(coredns, MOUNT)
    assert coredns == before
    assert deployment.add_etcd_client(once, MOUNT) == once


def test_remove_restores_the_original_exactly(coredns):
    patched = deployment.set_pod_annotation(
        deployment.add_etcd_client(coredns, MOUNT), deployment.COREFILE_ANNOTATION, "abc"
    )
    assert deployment.remove_etcd_client(patched) == coredns


def test_remove_keeps_host_aliases_it_did_not_add(coredns):
    coredns["spec"]["template"]["spec"]["hostAliases"] = [{"ip": "10.0.0.1", "hostnames": ["mine"]}]
    patched = deployment.add_etcd_client(coredns, MOUNT)
    assert len(patched["spec"]["template"]["spec"]["hostAliases"]) == 2
    assert deployment.remove_etcd_client(patched) == coredns


def test_new_host_alias_ip_replaces_the_old_one(coredns):
    first = deployment.add_etcd_client(coredns, MOUNT)
    moved = EtcdClientMount("etcd-client-for-core-dns", "etcd-ca", "coredns", (("10.96.0.99", ("etcd.k2s-dns.svc",)),))
    second = deployment.add_etcd_client(first, moved)
    assert second["spec"]["template"]["spec"]["hostAliases"] == [
        {"ip": "10.96.0.99", "hostnames": ["etcd.k2s-dns.svc"]}
    ]


def test_corefile_hash_changes_the_pod_template(coredns):
    hashed = deployment.set_pod_annotation(coredns, deployment.COREFILE_ANNOTATION, "abc")
    assert hashed["spec"]["template"]["metadata"]["annotations"] == {deployment.COREFILE_ANNOTATION: "abc"}
    assert not deployment.same_spec(hashed, coredns)


def test_unknown_container_is_an_error(coredns):
    coredns["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
    with pytest.raises(ValueError, match="no container named 'dns'"):
        deployment.add_etcd_client(coredns, EtcdClientMount("a", "b", "dns"))


def test_pre_stop_sleep_is_added_and_removed(coredns):
    patched = deployment.add_etcd_client(coredns, MOUNT)
    container = patched["spec"]["template"]["spec"]["containers"][0]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    without = deployment.add_etcd_client(patched, EtcdClientMount("etcd-client-for-core-dns", "etcd-ca"))
    assert "lifecycle" not in without["spec"]["template"]["spec"]["containers"][0]
    assert deployment.remove_etcd_client(patched) == coredns


def test_a_pre_stop_hook_of_the_owner_is_kept(coredns):
    theirs = {"preStop": {"exec": {"command": ["/drain"]}}}
    coredns["spec"]["template"]["spec"]["containers"][0]["lifecycle"] = copy.deepcopy(theirs)
    patched = deployment.add_etcd_client(coredns, MOUNT)
    assert patched["spec"]["template"]["spec"]["containers"][0]["lifecycle"] == theirs
    assert deployment.remove_etcd_client(patched) == coredns
