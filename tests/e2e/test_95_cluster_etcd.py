"""Cluster-etcd mode on kind's kubeadm control plane: records in the cluster etcd, no CA key in any
Secret, certificate rotation without a DNS outage, and an uninstall that removes what it owned."""

from __future__ import annotations

import base64
import json
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .conftest import coredns_state, install, installed
from .helpers import NAMESPACE, RELEASE, diagnostics, helm, kubectl, kubectl_json, resolves_to, wait_for

CLUSTER_MODE = [
    "--set",
    "etcd.mode=cluster",
    "--set",
    "etcd.cluster.certificateValidityDays=2",
    # Every renewal run finds the certificate due, so the test can rotate on demand.
    "--set",
    "etcd.cluster.renewBeforeDays=2",
]


def cluster_etcdctl(*args: str) -> str:
    pod = kubectl("-n", "kube-system", "get", "pods", "-l", "component=etcd", "-o", "name").split()[0]
    pki = "/etc/kubernetes/pki/etcd"
    return kubectl(
        "-n",
        "kube-system",
        "exec",
        pod,
        "--",
        "etcdctl",
        "--endpoints=https://127.0.0.1:2379",
        f"--cacert={pki}/ca.crt",
        f"--cert={pki}/healthcheck-client.crt",
        f"--key={pki}/healthcheck-client.key",
        *args,
    )


def secret_data(namespace: str, name: str) -> dict[str, bytes]:
    data = kubectl_json("-n", namespace, "get", "secret", name)["data"]
    return {k: base64.b64decode(v) for k, v in data.items()}


def secrets_holding_the_ca_key(ca_pem: bytes) -> list[str]:
    ca_public = x509.load_pem_x509_certificate(ca_pem).public_key().public_numbers()
    found = []
    for secret in kubectl_json("get", "secrets", "-A")["items"]:
        for key, value in (secret.get("data") or {}).items():
            raw = base64.b64decode(value)
            if b"PRIVATE KEY" not in raw:
                continue
            try:
                private = serialization.load_pem_private_key(raw, password=None)
            except ValueError:
                continue
            if private.public_key().public_numbers() == ca_public:
                found.append(f"{secret['metadata']['namespace']}/{secret['metadata']['name']}:{key}")
    return found


class Watch:
    """Resolves one name every 0.1 s like glibc's stub resolver does by default (timeout 5 s,
    two attempts); keeps the lookups that still failed, and the slowest successful one."""

    def __init__(self, resolver, name: str, expected: set[str]):
        self.resolver, self.name, self.expected = resolver, name, expected
        self.total, self.failures, self.slowest = 0, [], 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.total += 1
            began = time.monotonic()
            first = self.resolver.query(self.name, timeout=5.0)
            if set(first.records) != self.expected:
                second = self.resolver.query(self.name, timeout=5.0)
                if set(second.records) != self.expected:
                    self.failures.append(f"{time.strftime('%H:%M:%S')} {first} / {second}")
                    continue
            self.slowest = max(self.slowest, time.monotonic() - began)
            time.sleep(0.1)


def test_cluster_etcd_mode(coredns_before, resolver, ingresses, service_probe):
    if installed():
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    start = time.time()
    install(*CLUSTER_MODE)

    ingresses.apply("cluster", ["cluster-mode.cluster.local"], ["192.0.2.120"])
    published = resolves_to(resolver, "cluster-mode.cluster.local", {"192.0.2.120"})
    wait_for(published, 60, "record served from the cluster etcd", diagnostics)
    keys = cluster_etcdctl("get", "--prefix", "/skydns", "--keys-only")
    assert "/skydns/local/cluster/cluster-mode" in keys

    ca_pem = secret_data("kube-system", "etcd-ca")["ca.crt"]
    assert secrets_holding_the_ca_key(ca_pem) == []

    before = secret_data("kube-system", "etcd-client-for-core-dns")["tls.crt"]
    watch = Watch(resolver, "cluster-mode.cluster.local", {"192.0.2.120"})
    watch.thread.start()
    rotation = time.time()
    kubectl("-n", NAMESPACE, "create", "job", "renew-now", f"--from=cronjob/{RELEASE}-etcd-certs-renew")
    kubectl("-n", NAMESPACE, "wait", "--for=condition=Complete", "job/renew-now", "--timeout=180s")
    kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s")
    kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{RELEASE}-external-dns", "--timeout=180s")
    time.sleep(3)
    watch.stop.set()
    watch.thread.join()
    kubectl("-n", NAMESPACE, "delete", "job", "renew-now")
    assert secret_data("kube-system", "etcd-client-for-core-dns")["tls.crt"] != before, "certificate not rotated"
    print(
        f"rotation: {len(watch.failures)} of {watch.total} lookups failed over {time.time() - rotation:.0f}s, "
        f"slowest answer {watch.slowest:.2f}s"
    )
    assert watch.failures == [], f"lookups failed during rotation ({watch.total} in all): {watch.failures}"
    assert published(), "record must resolve after rotation"

    helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    assert coredns_state()["Corefile"] == coredns_before["Corefile"]
    assert "cluster-mode" not in cluster_etcdctl("get", "--prefix", "/skydns", "--keys-only")
    names = kubectl("-n", "kube-system", "get", "secrets", "-o", "name")
    assert "secret/etcd-client-for-core-dns" not in names and "secret/etcd-ca" not in names
    assert service_probe.failures_since(start) == [], "Service names failed in cluster-etcd mode"
    print(json.dumps({"rotation_lookups": watch.total, "rotation_failures": len(watch.failures)}))
