"""Faults: Service names keep resolving throughout; ingress names come back; nothing is lost for good."""

from __future__ import annotations

import time

import pytest

from .helpers import (
    NAMESPACE,
    RELEASE,
    diagnostics,
    etcdctl,
    kubectl,
    resolves_to,
    restart_coredns_pods,
    wait_for,
    wait_published,
)

RECOVERY = 240  # ExternalDNS crash-loops (with back-off) while etcd is away


@pytest.fixture
def published(ingresses, resolver):
    # A name of its own per test: the previous test's Ingress (its namespace is still being deleted) must not
    # own the record this test watches, or ExternalDNS hands it over (delete + create) mid-test.
    host = f"durable-{ingresses.namespace.rsplit('-', 1)[-1]}.cluster.local"
    ingresses.apply("durable", [host], ["192.0.2.90"])
    check = resolves_to(resolver, host, {"192.0.2.90"})
    # The previous fault may have left ExternalDNS in its crash back-off (it exits on an etcd error of a sync;
    # seen: 30-49 s in full-suite runs): wait as long as after a fault, a bound, not a target.
    wait_published(resolver, host, {"192.0.2.90"}, RECOVERY, "record before the fault")
    return check


def assert_services_kept_resolving(probe, start):
    assert probe.failures_since(start) == [], f"Service name failures during the fault: {probe.failures_since(start)}"


def test_etcd_pod_deleted(published, service_probe):
    start = time.time()
    kubectl("-n", NAMESPACE, "delete", "pod", f"{RELEASE}-etcd-0", "--wait=true")
    kubectl("-n", NAMESPACE, "rollout", "status", f"statefulset/{RELEASE}-etcd", "--timeout=180s")
    wait_for(published, RECOVERY, "record back after etcd restart", diagnostics, interval=1)
    assert_services_kept_resolving(service_probe, start)
    # The new pod's etcd started empty (no persistence): its auth sidecar must have locked it again.
    wait_for(etcd_locked, 60, "authentication back on in the new etcd", auth_sidecar_log)


def etcd_locked() -> bool:
    return "Authentication Status: true" in etcdctl("auth", "status", check=False)


def auth_sidecar_log() -> str:
    return kubectl("-n", NAMESPACE, "logs", f"{RELEASE}-etcd-0", "-c", "auth", check=False)


def test_external_dns_pod_deleted(published, service_probe):
    start = time.time()
    kubectl("-n", NAMESPACE, "delete", "pod", "-l", "app.kubernetes.io/component=external-dns", "--wait=true")
    assert published(), "records must survive an ExternalDNS restart"
    kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{RELEASE}-external-dns", "--timeout=180s")
    wait_for(published, 60, "record after ExternalDNS restart", diagnostics)
    assert_services_kept_resolving(service_probe, start)


def test_coredns_restarted(published, service_probe):
    start = time.time()
    restart_coredns_pods()
    wait_for(published, 60, "record after CoreDNS restart", diagnostics)
    assert_services_kept_resolving(service_probe, start)


def test_etcd_unreachable_for_a_while(published, service_probe, resolver, kubernetes_ip):
    start = time.time()
    kubectl("-n", NAMESPACE, "scale", f"statefulset/{RELEASE}-etcd", "--replicas=0")
    kubectl("-n", NAMESPACE, "wait", "--for=delete", f"pod/{RELEASE}-etcd-0", "--timeout=120s")
    outage_end = time.time() + 20
    while time.time() < outage_end:  # Service names must keep resolving while etcd is gone
        assert kubernetes_ip in resolver.query("kubernetes.default.svc.cluster.local").records
        time.sleep(0.5)
    kubectl("-n", NAMESPACE, "scale", f"statefulset/{RELEASE}-etcd", "--replicas=1")
    kubectl("-n", NAMESPACE, "rollout", "status", f"statefulset/{RELEASE}-etcd", "--timeout=180s")
    wait_for(published, RECOVERY, "record back after the etcd outage", diagnostics, interval=1)
    assert_services_kept_resolving(service_probe, start)
