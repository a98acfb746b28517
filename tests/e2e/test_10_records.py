"""Ingress -> ExternalDNS -> etcd -> CoreDNS: records appear, follow changes and disappear."""

from __future__ import annotations

import json

import pytest

from .conftest import pod_lookup
from .helpers import diagnostics, etcdctl, is_nxdomain, kubectl, resolves_to, wait_for

PROPAGATION = 60  # generous: the chart's defaults publish in about a second


def wait_until_resolves(resolver, name: str, expected: set[str], rdtype: str = "A") -> None:
    what = f"{name} {rdtype} {' '.join(sorted(expected))}"
    wait_for(resolves_to(resolver, name, expected, rdtype), PROPAGATION, what, diagnostics)


def test_status_ip_becomes_an_a_record(ingresses, resolver, client_pod):
    ingresses.apply("web", ["web-a.cluster.local"], ["192.0.2.10"])
    wait_until_resolves(resolver, "web-a.cluster.local", {"192.0.2.10"})
    # Inside a pod, through its own resolv.conf (search path, ndots), as applications resolve it.
    wait_for(
        lambda: pod_lookup("web-a.cluster.local") == {"192.0.2.10"},
        PROPAGATION,
        "web-a.cluster.local from inside a pod",
        diagnostics,
    )


def test_several_hosts_and_rules(ingresses, resolver):
    hosts = ["multi-1.cluster.local", "multi-2.cluster.local", "deep.multi.cluster.local"]
    ingresses.apply("multi", hosts, ["192.0.2.21", "192.0.2.22"])
    for host in hosts:
        wait_for(resolves_to(resolver, host, {"192.0.2.21", "192.0.2.22"}), PROPAGATION, f"{host} A", diagnostics)


def test_target_annotation_wins_over_status(ingresses, resolver):
    ingresses.apply(
        "annotated",
        ["annotated.cluster.local"],
        ["192.0.2.30"],
        annotations={"external-dns.alpha.kubernetes.io/target": "198.51.100.7"},
    )
    wait_until_resolves(resolver, "annotated.cluster.local", {"198.51.100.7"})


def test_ipv6_status_becomes_an_aaaa_record(ingresses, resolver):
    ingresses.apply("v6", ["six.cluster.local"], ["2001:db8::6"])
    wait_until_resolves(resolver, "six.cluster.local", {"2001:db8::6"}, "AAAA")


def test_record_follows_address_and_host_changes(ingresses, resolver):
    ingresses.apply("moving", ["move-old.cluster.local"], ["192.0.2.40"])
    wait_for(
        resolves_to(resolver, "move-old.cluster.local", {"192.0.2.40"}), PROPAGATION, "initial record", diagnostics
    )
    ingresses.set_addresses("moving", ["192.0.2.41"])
    wait_for(resolves_to(resolver, "move-old.cluster.local", {"192.0.2.41"}), PROPAGATION, "new address", diagnostics)
    ingresses.apply("moving", ["move-new.cluster.local"])
    wait_for(resolves_to(resolver, "move-new.cluster.local", {"192.0.2.41"}), PROPAGATION, "new host", diagnostics)
    wait_for(is_nxdomain(resolver, "move-old.cluster.local"), PROPAGATION, "old host NXDOMAIN", diagnostics)


def test_deleted_ingress_gives_nxdomain(ingresses, resolver):
    ingresses.apply("gone", ["gone.cluster.local"], ["192.0.2.50"])
    wait_for(resolves_to(resolver, "gone.cluster.local", {"192.0.2.50"}), PROPAGATION, "record", diagnostics)
    ingresses.delete("gone")
    wait_for(is_nxdomain(resolver, "gone.cluster.local"), PROPAGATION, "NXDOMAIN after delete", diagnostics)


def test_host_outside_the_zone_is_ignored(ingresses, resolver):
    ingresses.apply("mixed", ["inside.cluster.local", "outside.example.test"], ["192.0.2.60"])
    wait_for(resolves_to(resolver, "inside.cluster.local", {"192.0.2.60"}), PROPAGATION, "in-zone host", diagnostics)
    keys = etcdctl("get", "--prefix", "/", "--keys-only")
    assert "/skydns/local/cluster/inside" in keys
    assert "example" not in keys and "/test/" not in keys, keys


def test_records_of_another_owner_are_untouched(ingresses, resolver):
    foreign_key = "/skydns/local/cluster/foreign/manual"
    foreign = {"host": "203.0.113.9", "ttl": 30, "owner": "someone-else"}
    etcdctl("put", foreign_key, json.dumps(foreign))
    try:
        wait_for(resolves_to(resolver, "foreign.cluster.local", {"203.0.113.9"}), PROPAGATION, "foreign record")
        # An Ingress claiming the same name, and churn elsewhere, must not change or delete it.
        ingresses.apply("claim", ["foreign.cluster.local"], ["192.0.2.70"])
        ingresses.apply("churn", ["churn.cluster.local"], ["192.0.2.71"])
        wait_for(resolves_to(resolver, "churn.cluster.local", {"192.0.2.71"}), PROPAGATION, "churn record")
        ingresses.delete("claim")
        ingresses.delete("churn")
        wait_for(is_nxdomain(resolver, "churn.cluster.local"), PROPAGATION, "churn removed", diagnostics)
        assert json.loads(etcdctl("get", foreign_key, "--print-value-only")) == foreign
        assert "203.0.113.9" in resolver.query("foreign.cluster.local").records
    finally:
        etcdctl("del", foreign_key)


def test_etcd_grants_each_client_only_what_it_needs(ingresses, resolver):
    # The records this suite resolves were written as user k2s-dns-external-dns and read as k2s-dns-coredns
    # (their certificates' CNs): with authentication on, anything else is refused.
    assert "Authentication Status: true" in etcdctl("auth", "status")
    with pytest.raises(RuntimeError, match="permission denied"):
        etcdctl("get", "--prefix", "/skydns", as_root=False)
    writer = etcdctl("role", "get", "k2s-dns-external-dns-prefix")
    reader = etcdctl("role", "get", "k2s-dns-coredns-prefix")
    read, write = writer.split("KV Write:")
    assert "[/skydns, /skydnt)" in read and "[/skydns, /skydnt)" in write, writer
    read, write = reader.split("KV Write:")
    assert "[/skydns, /skydnt)" in read and "/skydns" not in write, reader
    assert "k2s-dns-external-dns-prefix" in etcdctl("user", "get", "k2s-dns-external-dns")
    assert "k2s-dns-coredns-prefix" in etcdctl("user", "get", "k2s-dns-coredns")


def test_service_names_resolve_as_before(namespace, resolver, client_pod, kubernetes_ip, service_probe):
    kubectl("-n", namespace, "create", "service", "clusterip", "plain", "--tcp=80:80")
    ip = json.loads(kubectl("-n", namespace, "get", "service", "plain", "-o", "json"))["spec"]["clusterIP"]
    name = f"plain.{namespace}.svc.cluster.local"
    wait_for(resolves_to(resolver, name, {ip}), 30, name)
    assert resolves_to(resolver, "kubernetes.default.svc.cluster.local", {kubernetes_ip})()
    assert pod_lookup(f"plain.{namespace}") == {ip}
    assert pod_lookup("kubernetes.default") == {kubernetes_ip}
    assert resolver.query(f"missing.{namespace}.svc.cluster.local").rcode == "NXDOMAIN"
    assert service_probe.count > 0 and service_probe.failures_since(0) == []
