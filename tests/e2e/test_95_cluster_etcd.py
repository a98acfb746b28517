"""Cluster-etcd mode on kind's kubeadm control plane: records in the cluster etcd, no CA key in any
Secret, certificate rotation without a DNS outage, and an uninstall that removes what it owned. The release
namespace admits privileged pods (the certificate Jobs need hostPath), and everything else in it meets
restricted; a Secret that is not the release's is neither overwritten nor deleted; with certificates of
your own (etcd.cluster.existingSecret) uninstall still removes the records."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from k2s_dns import certs
from tests.conftest import CHART

from .conftest import coredns_state, install, installed
from .helpers import NAMESPACE, RELEASE, Watch, diagnostics, helm, kubectl, kubectl_json, resolves_to, wait_for

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


PSA = "pod-security.kubernetes.io"


def label_release_namespace() -> None:
    """As README says: the namespace admits privileged pods, and warns about anything not restricted."""
    if not kubectl("get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "name"):
        kubectl("create", "namespace", NAMESPACE)
    kubectl("label", "--overwrite", "namespace", NAMESPACE, f"{PSA}/enforce=privileged", f"{PSA}/warn=restricted")


def unlabel_release_namespace() -> None:
    kubectl("label", "namespace", NAMESPACE, f"{PSA}/enforce-", f"{PSA}/warn-", check=False)


def pods_violating_restricted(namespace: str) -> list[str]:
    """The pods the API server names when asked (server-side dry run) to enforce restricted on the namespace."""
    result = subprocess.run(
        ["kubectl", "label", "--dry-run=server", "--overwrite", "namespace", namespace, f"{PSA}/enforce=restricted"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    flagged = []
    for line in result.stderr.splitlines():
        # "Warning: existing pods in namespace ... violate ..." then "Warning: POD (and N other pods): reasons"
        if line.startswith("Warning: ") and "existing pods in namespace" not in line:
            flagged.append(line.removeprefix("Warning: ").split(":", 1)[0].split(" ", 1)[0])
    return flagged


def admitted(pod_spec: dict, namespace: str) -> subprocess.CompletedProcess:
    """Would the API server admit a pod with this spec in `namespace` (server-side dry run)?"""
    spec = {k: v for k, v in pod_spec.items() if k not in ("serviceAccountName", "automountServiceAccountToken")}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "psa-check", "namespace": namespace}, "spec": spec}
    return subprocess.run(
        ["kubectl", "create", "--dry-run=server", "-f", "-"],
        input=json.dumps(pod),
        capture_output=True,
        text=True,
        check=False,
    )


def check_pod_security() -> None:
    """The certificate Job's pod needs privileged (hostPath); every pod the release runs meets restricted."""
    cron = kubectl_json("-n", NAMESPACE, "get", "cronjob", f"{RELEASE}-etcd-certs-renew")
    cert_pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {v["hostPath"]["type"] for v in cert_pod["volumes"]} == {"File"}
    assert all(m["readOnly"] for m in cert_pod["containers"][0]["volumeMounts"])
    assert admitted(cert_pod, NAMESPACE).returncode == 0, "refused in a namespace labelled privileged"
    strict = f"e2e-baseline-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", strict)
    try:
        kubectl("label", "namespace", strict, f"{PSA}/enforce=baseline")
        # Without its ServiceAccount (which exists only in the release namespace): Pod Security alone decides.
        elsewhere = {k: v for k, v in cert_pod.items() if k not in ("serviceAccountName", "serviceAccount")}
        refused = admitted(elsewhere, strict)
        assert refused.returncode != 0 and "hostPath volumes" in refused.stderr, refused.stderr
    finally:
        kubectl("delete", "namespace", strict, "--wait=false")
    running = kubectl("-n", NAMESPACE, "get", "pods", "-o", "name")
    assert f"pod/{RELEASE}-external-dns" in running and f"pod/{RELEASE}-controller" in running, running
    flagged = [p for p in pods_violating_restricted(NAMESPACE) if not p.startswith(f"{RELEASE}-etcd-certs-")]
    assert flagged == [], f"pods of the release that do not meet restricted: {flagged}"


def test_cluster_etcd_mode(coredns_before, resolver, ingresses, service_probe):
    if installed():
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    start = time.time()
    label_release_namespace()
    # K2s's own scripts create a Secret of this name: the install stops, naming it, and changes nothing.
    kubectl("-n", "kube-system", "create", "secret", "generic", "etcd-ca", "--from-literal=ca.crt=k2s-scripts")
    refused = helm(
        "install", RELEASE, str(CHART), "-n", NAMESPACE, *CLUSTER_MODE, "--wait", "--timeout", "8m", check=False
    )
    assert refused.returncode != 0
    assert "Secret kube-system/etcd-ca (it belongs to no k2s-dns release: somebody else made it)" in refused.stderr
    assert secret_data("kube-system", "etcd-ca") == {"ca.crt": b"k2s-scripts"} and not installed()
    # Taken over on request: overwritten with the kubeadm CA certificate, and marked as this release's.
    install(*CLUSTER_MODE, "--set", "etcd.adoptExistingSecrets=true")
    adopted = kubectl_json("-n", "kube-system", "get", "secret", "etcd-ca")
    assert adopted["metadata"]["annotations"]["k2s-dns.io/owner"] == f"{NAMESPACE}/{RELEASE}"
    assert b"BEGIN CERTIFICATE" in secret_data("kube-system", "etcd-ca")["ca.crt"]
    check_pod_security()

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
    # The cluster has a worker (and the control plane takes pods too): the Job still ran where the CA is.
    ran_on = kubectl(
        "-n", NAMESPACE, "get", "pods", "-l", "job-name=renew-now", "-o", "jsonpath={.items[*].spec.nodeName}"
    )
    workers = kubectl("get", "nodes", "-l", "!node-role.kubernetes.io/control-plane", "-o", "name").split()
    assert workers, "the e2e cluster should have a worker node"
    assert ran_on.split() == [control_plane_node()], f"certificate Job ran on {ran_on}, not the control plane"
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

    # A Secret that is somebody else's by the time of uninstall is kept; the release's own are deleted,
    # after the records.
    kubectl("-n", "kube-system", "annotate", "--overwrite", "secret", "etcd-ca", "k2s-dns.io/owner=someone/else")
    try:
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
        assert coredns_state()["Corefile"] == coredns_before["Corefile"]
        assert "cluster-mode" not in cluster_etcdctl("get", "--prefix", "/skydns", "--keys-only")
        names = kubectl("-n", "kube-system", "get", "secrets", "-o", "name")
        assert "secret/etcd-client-for-core-dns" not in names
        assert "secret/etcd-ca" in names, "uninstall deleted a Secret that is not the release's"
        release_secrets = kubectl("-n", NAMESPACE, "get", "secrets", "-l", "app.kubernetes.io/part-of=k2s-dns")
        assert f"{RELEASE}-external-dns-etcd-client" not in release_secrets
    finally:
        kubectl("-n", "kube-system", "delete", "secret", "etcd-ca", "--ignore-not-found")
        unlabel_release_namespace()
    assert service_probe.failures_since(start) == [], "Service names failed in cluster-etcd mode"
    print(json.dumps({"rotation_lookups": watch.total, "rotation_failures": len(watch.failures)}))


def control_plane_node() -> str:
    return kubectl(
        "get", "nodes", "-l", "node-role.kubernetes.io/control-plane", "-o", "jsonpath={.items[0].metadata.name}"
    )


def kubeadm_etcd_ca() -> certs.CA:
    """The kubeadm etcd CA, read on the control-plane node (kind: a container), as an administrator would."""
    node = control_plane_node()

    def read(name: str) -> bytes:
        cmd = ["docker", "exec", node, "cat", f"/etc/kubernetes/pki/etcd/{name}"]
        return subprocess.run(cmd, capture_output=True, check=True).stdout

    return certs.CA.load(read("ca.crt"), read("ca.key"), dt.datetime.now(dt.UTC))


def create_tls_secret(namespace: str, name: str, files: dict[str, bytes]) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v).decode() for k, v in files.items()},
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(body))


def test_existing_secret_mode_removes_its_records_and_keeps_the_secrets(
    coredns_before, resolver, ingresses, service_probe
):
    """etcd.cluster.existingSecret: no certificate Job, and uninstall still deletes the release's records
    (authenticating with the given Secret), and leaves the Secrets, which are the user's."""
    if installed():
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    if not kubectl("get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "name"):
        kubectl("create", "namespace", NAMESPACE)
    ca = kubeadm_etcd_ca()
    now = dt.datetime.now(dt.UTC)
    edns_crt, edns_key = certs.issue(ca, "k2s-dns-own", 2, now)
    coredns_crt, coredns_key = certs.issue(ca, "k2s-dns-own-coredns", 2, now)
    own = [(NAMESPACE, "e2e-own-etcd-client"), ("kube-system", "e2e-own-coredns"), ("kube-system", "e2e-own-ca")]
    create_tls_secret(NAMESPACE, own[0][1], {"tls.crt": edns_crt, "tls.key": edns_key, "ca.crt": ca.cert_pem})
    create_tls_secret("kube-system", own[1][1], {"tls.crt": coredns_crt, "tls.key": coredns_key})
    create_tls_secret("kube-system", own[2][1], {"ca.crt": ca.cert_pem})
    etcd_pod = kubectl_json("-n", "kube-system", "get", "pods", "-l", "component=etcd")["items"][0]
    urls = etcd_pod["metadata"]["annotations"]["kubeadm.kubernetes.io/etcd.advertise-client-urls"]
    start = time.time()
    try:
        install(
            "--set",
            "etcd.mode=cluster",
            "--set",
            f"etcd.cluster.existingSecret={own[0][1]}",
            "--set",
            f"etcd.cluster.endpoints={{{urls}}}",
            "--set",
            f"coredns.clientSecret={own[1][1]}",
            "--set",
            f"coredns.caSecret={own[2][1]}",
        )
        ingresses.apply("own", ["own-certs.cluster.local"], ["192.0.2.121"])
        wait_for(resolves_to(resolver, "own-certs.cluster.local", {"192.0.2.121"}), 60, "record", diagnostics)
        assert "/skydns/local/cluster/own-certs" in cluster_etcdctl("get", "--prefix", "/skydns", "--keys-only")
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
        assert "own-certs" not in cluster_etcdctl("get", "--prefix", "/skydns", "--keys-only"), "records stranded"
        assert coredns_state()["Corefile"] == coredns_before["Corefile"]
        for namespace, name in own:
            assert kubectl("-n", namespace, "get", "secret", name, "-o", "name"), f"{namespace}/{name} deleted"
    finally:
        for namespace, name in own:
            kubectl("-n", namespace, "delete", "secret", name, "--ignore-not-found")
    assert service_probe.failures_since(start) == [], "Service names failed in existingSecret mode"
