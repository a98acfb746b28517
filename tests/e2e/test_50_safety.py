"""Nothing overwritten that is not ours, no change that splits etcd, peers that accept only peers, and the
instructions NOTES.txt prints for `coredns.patch.enabled=false` applied by hand. The session release
(bundled etcd, defaults) is installed before and after every test here."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid

from tests.conftest import CHART
from tests.notes import shell_commands, steps, zone_block

from .conftest import install
from .helpers import (
    NAMESPACE,
    RELEASE,
    current_corefile,
    diagnostics,
    helm,
    is_nxdomain,
    kubectl,
    kubectl_json,
    resolves_to,
    revision,
    set_corefile,
    wait_for,
)


def secret_data(namespace: str, name: str) -> dict[str, str]:
    return kubectl_json("-n", namespace, "get", "secret", name)["data"]


# --- etcd peers accept only the peer certificate ------------------------------------------------------------

PROBE = """
import base64, http.client, json, os, ssl, tempfile, time
files = json.loads(base64.b64decode(FILES))
home = tempfile.mkdtemp(dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
for name, pem in files.items():
    with open(os.path.join(home, name), "w") as f:
        f.write(pem)
results = {}
for who in ("peer", "external-dns", "coredns"):
    ctx = ssl.create_default_context(cafile=os.path.join(home, "ca.crt"))
    ctx.check_hostname = False  # an IP address: the test is about the client certificate, not the name
    ctx.load_cert_chain(os.path.join(home, who + ".crt"), os.path.join(home, who + ".key"))
    for attempt in range(3):  # a connection dropped without a TLS alert is retried; a refusal is not
        try:
            conn = http.client.HTTPSConnection(HOST, 2380, context=ctx, timeout=10)
            conn.request("GET", "/members")
            response = conn.getresponse()
            results[who] = {"status": response.status, "body": response.read().decode()[:400]}
            break
        except ssl.SSLError as err:
            results[who] = {"error": type(err).__name__ + ": " + str(err)}
            break
        except OSError as err:
            results[who] = {"error": type(err).__name__ + ": " + str(err), "attempts": attempt + 1}
            time.sleep(2)
print(json.dumps(results))
"""


def run_in_etcd_pod(script: str, image: str) -> str:
    """Run a Python script in an ephemeral container of etcd member 0: it shares the member's network
    namespace, so its pod IP:2380 is the peer port and no NetworkPolicy is in the way."""
    pod, name = f"{RELEASE}-etcd-0", f"peer-probe-{uuid.uuid4().hex[:6]}"
    kubectl(
        "-n",
        NAMESPACE,
        "debug",
        f"pod/{pod}",
        "-c",
        name,
        f"--image={image}",
        "--image-pull-policy=IfNotPresent",
        "--profile=restricted",
        "--",
        "python3",
        "-c",
        script,
    )

    def terminated() -> bool:
        statuses = kubectl_json("-n", NAMESPACE, "get", "pod", pod)["status"].get("ephemeralContainerStatuses", [])
        return any(s["name"] == name and "terminated" in s.get("state", {}) for s in statuses)

    wait_for(terminated, 120, f"ephemeral container {name} finished")
    return kubectl("-n", NAMESPACE, "logs", pod, "-c", name)


def test_peer_port_refuses_client_certificates(release, hook_image):
    peer = secret_data(NAMESPACE, f"{RELEASE}-etcd-peer")
    edns = secret_data(NAMESPACE, f"{RELEASE}-external-dns-etcd-client")
    coredns = secret_data("kube-system", "etcd-client-for-core-dns")
    files = {"ca.crt": peer["ca.crt"]}
    for who, data in (("peer", peer), ("external-dns", edns), ("coredns", coredns)):
        files[f"{who}.crt"], files[f"{who}.key"] = data["tls.crt"], data["tls.key"]
    files = {name: base64.b64decode(value).decode() for name, value in files.items()}
    encoded = base64.b64encode(json.dumps(files).encode()).decode()
    # From the pod's own address, as a peer connects: etcd also checks a peer client certificate's names
    # against the remote address (reverse lookup of the pod IP: <pod>.<headless Service>), which 127.0.0.1
    # would fail whatever the certificate.
    host = kubectl("-n", NAMESPACE, "get", "pod", f"{RELEASE}-etcd-0", "-o", "jsonpath={.status.podIP}")
    output = run_in_etcd_pod(f"FILES = {encoded!r}\nHOST = {host!r}\n{PROBE}", hook_image)
    results = json.loads(output.strip().splitlines()[-1])
    # The members' own certificate gets the member list: the port is reachable, TLS works.
    assert results["peer"].get("status") == 200, results
    assert f"{RELEASE}-etcd-0" in results["peer"]["body"], results
    # Certificates from the same CA with a client's CN are refused in the TLS handshake: Go's TLS server
    # answers a failed VerifyPeerCertificate (--peer-cert-allowed-cn) with a bad_certificate alert.
    for who in ("external-dns", "coredns"):
        assert "status" not in results[who], f"{who}'s client certificate was accepted on the peer port: {results}"
        error = results[who]["error"].upper()
        assert "TIMED OUT" not in error and "REFUSED" not in error, results  # refused by TLS, not unreachable
        assert "CERTIFICATE" in error or "RESET" in error or "EOF" in error, results


# --- Changing the number of etcd members ------------------------------------------------------------------


def test_changing_the_member_count_is_refused_before_anything_changes(release):
    before, sts = revision(), kubectl_json("-n", NAMESPACE, "get", "statefulset", f"{RELEASE}-etcd")
    result = helm(
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "--reuse-values",
        "--set",
        "etcd.bundled.replicas=3",
        "--set",
        "etcd.bundled.persistence.enabled=true",
        check=False,
    )
    assert result.returncode != 0
    assert "etcd.bundled.replicas cannot change from 1 to 3 on upgrade" in result.stderr, result.stderr
    assert "Nothing was changed" in result.stderr and "helm uninstall" in result.stderr
    after = kubectl_json("-n", NAMESPACE, "get", "statefulset", f"{RELEASE}-etcd")
    assert revision() == before
    assert after["spec"]["replicas"] == 1
    assert after["metadata"]["generation"] == sts["metadata"]["generation"]
    pods = kubectl("-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=etcd", "-o", "name").split()
    assert pods == [f"pod/{RELEASE}-etcd-0"]


# --- Secrets that are not ours ----------------------------------------------------------------------------


def test_a_secret_that_is_not_ours_is_never_overwritten(release):
    """An upgrade pointing CoreDNS's CA Secret at one somebody else made stops, naming it; nothing changes."""
    name = "e2e-foreign-ca"
    kubectl("-n", "kube-system", "create", "secret", "generic", name, "--from-literal=ca.crt=theirs")
    try:
        before_secret = kubectl_json("-n", "kube-system", "get", "secret", name)
        before = revision()
        result = helm(
            "upgrade",
            RELEASE,
            str(CHART),
            "-n",
            NAMESPACE,
            "--reuse-values",
            "--set",
            f"coredns.caSecret={name}",
            check=False,
        )
        assert result.returncode != 0
        assert f"Secret kube-system/{name} (it belongs to no k2s-dns release: somebody else made it)" in result.stderr
        assert "etcd.adoptExistingSecrets=true" in result.stderr
        after_secret = kubectl_json("-n", "kube-system", "get", "secret", name)
        assert after_secret["data"] == before_secret["data"]
        assert after_secret["metadata"]["resourceVersion"] == before_secret["metadata"]["resourceVersion"]
        assert revision() == before
    finally:
        kubectl("-n", "kube-system", "delete", "secret", name, "--ignore-not-found")


def test_a_second_release_cannot_take_this_ones_secrets(release):
    """CoreDNS's Secrets live in kube-system under fixed names: a second release would replace them."""
    result = helm("install", "k2s-dns-second", str(CHART), "-n", "e2e-second-release", "--dry-run=server", check=False)
    assert result.returncode != 0
    assert (
        f"Secret kube-system/etcd-client-for-core-dns (it belongs to k2s-dns release {NAMESPACE}/{RELEASE})"
        in result.stderr
    ), result.stderr
    assert "not made by release e2e-second-release/k2s-dns-second" in result.stderr
    # Ours comes first: Helm's own refusal would only say "invalid ownership metadata".
    assert "invalid ownership metadata" not in result.stderr


def test_secrets_carry_the_releases_ownership(release):
    for namespace, name in (
        ("kube-system", "etcd-ca"),
        ("kube-system", "etcd-client-for-core-dns"),
        (NAMESPACE, f"{RELEASE}-etcd-peer"),
        (NAMESPACE, f"{RELEASE}-etcd-root"),
    ):
        meta = kubectl_json("-n", namespace, "get", "secret", name)["metadata"]
        assert meta["annotations"]["k2s-dns.io/owner"] == f"{NAMESPACE}/{RELEASE}", name
        assert meta["labels"]["app.kubernetes.io/part-of"] == "k2s-dns", name
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE, name


# --- NOTES.txt for coredns.patch.enabled=false, applied by hand -------------------------------------------


def bash(script: str) -> None:
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"


def edit_as_notes_say(text: str, block: list[str]) -> str:
    """What a person does with step 2: the printed server block right before kubeadm's `.:53`, with that
    block's prometheus line copied in (the test cluster's Corefile is kubeadm's)."""
    assert text.count(".:53 {\n") == 1, text
    return text.replace(".:53 {\n", "\n".join([block[0], "    prometheus :9153", *block[1:]]) + "\n.:53 {\n")


def test_notes_without_the_patch_work_when_applied_by_hand(release, ingresses, resolver, service_probe):
    name = "by-hand.cluster.local"
    ingresses.apply("by-hand", [name], ["192.0.2.51"])
    wait_for(resolves_to(resolver, name, {"192.0.2.51"}), 60, "name with the managed patch", diagnostics)
    start = time.time()
    install("--reuse-values", "--set", "coredns.patch.enabled=false")
    saved_corefile = current_corefile()
    saved_template = kubectl_json("-n", "kube-system", "get", "deployment", "coredns")["spec"]["template"]
    try:
        assert "k2s-dns" not in saved_corefile
        wait_for(is_nxdomain(resolver, name), 180, "the name gone with the patch", diagnostics)
        notes = helm("get", "notes", RELEASE, "-n", NAMESPACE).stdout
        parts = steps(notes)
        bash(shell_commands(parts[1]))  # mounts and host alias, exactly as printed
        kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s")
        set_corefile(edit_as_notes_say(saved_corefile, zone_block(notes)))
        bash(shell_commands(parts[3]))  # the restart
        kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s")
        wait_for(resolves_to(resolver, name, {"192.0.2.51"}), 120, "name by the NOTES' instructions", diagnostics)
    finally:
        set_corefile(saved_corefile)
        patch = [{"op": "replace", "path": "/spec/template", "value": saved_template}]
        kubectl("-n", "kube-system", "patch", "deployment", "coredns", "--type=json", "-p", json.dumps(patch))
        kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s")
        install("--reuse-values", "--set", "coredns.patch.enabled=true")
    wait_for(resolves_to(resolver, name, {"192.0.2.51"}), 120, "name with the patch back on", diagnostics)
    assert service_probe.failures_since(start) == [], "Service names failed while CoreDNS was edited by hand"
