"""`k2s-dns doctor HOST` on the real cluster: exit 0 for a published name; break each hop in turn and it names
that hop and exits 1. Every breakage is undone before the test ends, and the session's Service-name probe
must see no failure while it lasts.

doctor runs as a user would run it (`python -m k2s_dns doctor HOST --output json`, KUBECONFIG from the
environment) with `--server-only --no-local`: the test machines must send no query off the machine, and the
pod and Service addresses of the kind cluster are not routed on it, nor is its own resolver CoreDNS. It asks
CoreDNS through the suite's NodePort on 127.0.0.1 instead (`--server`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import yaml

from k2s_dns import corefile
from tests.conftest import CHART, REPO

from .helpers import (
    NAMESPACE,
    RELEASE,
    ZONE,
    converged,
    current_corefile,
    diagnostics,
    etcdctl,
    helm,
    kubectl,
    kubectl_json,
    resolves_to,
    set_corefile,
    wait_for,
    wait_published,
)

ADDRESS = "192.0.2.80"
PROPAGATION = 60
RECOVERY = 240  # after etcd restarts: ExternalDNS crash-loops (with back-off) until it is back
CONTROLLER = f"{RELEASE}-controller"
EXTERNAL_DNS = f"{RELEASE}-external-dns"


def doctor(host: str | None) -> tuple[int, dict, float]:
    """One run of the command: (exit code, its JSON report, seconds it took)."""
    args = [sys.executable, "-m", "k2s_dns", "doctor", *([host] if host else [])]
    args += ["--release", RELEASE, "--namespace", NAMESPACE, "--output", "json", "--server-only", "--no-local"]
    if os.environ.get("E2E_DNS_NODEPORT"):
        args += ["--server", f"127.0.0.1:{os.environ['E2E_DNS_NODEPORT']}"]
    start = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=180, cwd=REPO, env=os.environ)
    seconds = time.monotonic() - start
    try:
        report = json.loads(result.stdout)
    except ValueError:
        raise AssertionError(
            f"doctor printed no JSON (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
        ) from None
    return result.returncode, report, seconds


def failed_hop(report: dict) -> dict:
    return next((h for h in report["hops"] if h["status"] == "FAIL"), {})


def broken_at(hop: str, host: str, says: str, timeout: float = 90) -> dict:
    """Run doctor until it names `hop` as the broken one (exit 1) with `says` in the detail; its FAIL line."""
    seen: dict = {}

    def check() -> dict | None:
        code, report, _ = doctor(host)
        seen.update(report=report, code=code)
        failed = failed_hop(report)
        if code == 1 and report["failed"] == hop and says in failed.get("detail", ""):
            return failed
        return None

    failed = wait_for(check, timeout, f"doctor naming hop {hop} ({says})", lambda: json.dumps(seen, indent=2), 1)
    hops = [h["hop"] for h in seen["report"]["hops"]]
    after = hops[hops.index(hop) + 1 :]
    assert all(h["status"] == "SKIP" for h in seen["report"]["hops"] if h["hop"] in after), seen
    assert failed.get("fix"), f"no fix for {failed}"
    return failed


def key_path(host: str) -> str:
    return "/skydns/" + "/".join(reversed(host.split(".")))


def scale(kind: str, name: str, replicas: int) -> None:
    kubectl("-n", NAMESPACE, "scale", f"{kind}/{name}", f"--replicas={replicas}")
    if replicas:
        kubectl("-n", NAMESPACE, "rollout", "status", f"{kind}/{name}", "--timeout=180s")
    else:  # (no pod left to wait for is not an error here)
        component = "controller" if name == CONTROLLER else "external-dns"
        selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
        kubectl("-n", NAMESPACE, "wait", "--for=delete", "pod", "-l", selector, "--timeout=120s", check=False)


@pytest.fixture
def published(ingresses, namespace, resolver) -> str:
    """A name of this test's own (no record of another test in the way), resolving to ADDRESS."""
    host = f"{namespace}.{ZONE}"
    ingresses.apply("doctor", [host], [ADDRESS])
    # doctor asks every CoreDNS pod: each must have let go of a denial cached before the name existed.
    wait_published(resolver, host, {ADDRESS}, PROPAGATION, f"{host} published")
    return host


@pytest.fixture
def healthy_again(resolver) -> Iterator[list[str]]:
    """After the test: the name resolves again (hosts appended by the test) and Service names never failed."""
    hosts: list[str] = []
    yield hosts
    for host in hosts:
        wait_for(resolves_to(resolver, host, {ADDRESS}), RECOVERY, f"{host} back", diagnostics, interval=1)


def test_healthy_host_exits_zero(published, figure, service_probe):
    # doctor reports plugin/etcd errors CoreDNS logged in the last 2 minutes; an earlier test's CoreDNS
    # restart (a terminating pod's etcd client closing) is such an error until it ages out of that window.
    wait_for(lambda: doctor(published)[0] == 0, 180, "doctor healthy once earlier restarts aged out", interval=5)
    runs = []
    for _ in range(3):
        code, report, seconds = doctor(published)
        assert code == 0, json.dumps(report, indent=2)
        runs.append(seconds)
    statuses = {h["hop"]: h["status"] for h in report["hops"]}
    assert report["ok"] and report["failed"] is None and "FAIL" not in statuses.values(), report
    hops = ["release", "source", "external-dns", "etcd", "coredns", "answer", "workstation"]
    assert [h["hop"] for h in report["hops"]] == hops
    assert statuses["etcd"] == "OK" and statuses["source"] == "OK", report
    etcd = next(h for h in report["hops"] if h["hop"] == "etcd")
    assert etcd["data"]["records"] == {published: [ADDRESS]}, etcd
    if os.environ.get("E2E_DNS_NODEPORT"):
        assert statuses["answer"] == "OK", report  # CoreDNS asked through the NodePort, compared with etcd
    code, whole, whole_seconds = doctor(None)
    assert code == 0 and [h["hop"] for h in whole["hops"]] == ["release", "external-dns", "etcd", "coredns"], whole
    figure(
        f"k2s-dns doctor HOST: {statistics.median(runs):.1f} s a run (3 runs, {min(runs):.1f}-{max(runs):.1f} s, "
        f"process start included); without HOST {whole_seconds:.1f} s"
    )


def test_ingress_without_an_address(ingresses, namespace):
    host = f"{namespace}.{ZONE}"
    ingresses.apply("noaddr", [host])
    failed = broken_at("source", host, "no address")
    assert "status.loadBalancer is empty" in failed["detail"]
    assert f"kubectl -n {namespace} annotate ingress noaddr external-dns.kubernetes.io/target=" in failed["fix"]


def test_host_outside_the_zone(ingresses):
    ingresses.apply("outside", ["doctor.example.test"], [ADDRESS])
    failed = broken_at("source", "doctor.example.test", "outside the zone")
    assert failed["detail"].startswith(f"doctor.example.test is outside the zone {ZONE}")
    assert "--set zone=example.test" in failed["fix"]


def test_wildcard_host_is_reported_not_silently_unresolved(ingresses, resolver):
    """CoreDNS's etcd plugin answers no name from a wildcard record (coredns/coredns#4314): the name under
    it stays NXDOMAIN, and doctor says why instead of leaving the user guessing."""
    ingresses.apply("wild", [f"*.wild.{ZONE}"], [ADDRESS])
    failed = broken_at("source", f"app.wild.{ZONE}", "wildcard")
    assert "coredns/coredns/issues/4314" in failed["detail"]
    assert resolver.query(f"app.wild.{ZONE}").rcode == "NXDOMAIN"


def test_external_dns_scaled_to_zero(published, healthy_again, service_probe):
    start = time.time()
    healthy_again.append(published)
    scale("deployment", EXTERNAL_DNS, 0)
    try:
        # Nothing rewrites the record now: take it away, so the name is really broken.
        etcdctl("del", "--prefix", key_path(published) + "/")
        failed = broken_at("external-dns", published, "scaled to 0")
        assert failed["fix"] == f"kubectl -n {NAMESPACE} scale deployment/{EXTERNAL_DNS} --replicas=1"
    finally:
        scale("deployment", EXTERNAL_DNS, 1)
    assert service_probe.failures_since(start) == []


def test_record_deleted_from_etcd(published, healthy_again, service_probe):
    """ExternalDNS scaled to 0 would be the first broken hop (see above); to leave it running without it
    writing the record again, its TXT registry caches what it read (`--txt-cache-interval`) for the test."""
    start = time.time()
    healthy_again.append(published)
    deploy = kubectl_json("-n", NAMESPACE, "get", "deployment", EXTERNAL_DNS)
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    patch = [{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--txt-cache-interval=1h"}]
    kubectl("-n", NAMESPACE, "patch", "deployment", EXTERNAL_DNS, "--type=json", "-p", json.dumps(patch))
    try:
        kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{EXTERNAL_DNS}", "--timeout=180s")
        wait_for(lambda: doctor(published)[0] == 0, PROPAGATION, "doctor passing with the cache on")
        etcdctl("del", "--prefix", key_path(published) + "/")
        failed = broken_at("etcd", published, "no record for")
        assert failed["detail"].startswith(f"no record for {published} in etcd (nothing under {key_path(published)})")
        assert f"kubectl -n {NAMESPACE} rollout restart deployment/{EXTERNAL_DNS}" in failed["fix"]
    finally:
        restore = [{"op": "replace", "path": "/spec/template/spec/containers/0/args", "value": args}]
        kubectl("-n", NAMESPACE, "patch", "deployment", EXTERNAL_DNS, "--type=json", "-p", json.dumps(restore))
        kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{EXTERNAL_DNS}", "--timeout=180s")
    assert service_probe.failures_since(start) == []


def test_managed_block_removed_from_the_corefile(published, healthy_again, service_probe):
    start = time.time()
    healthy_again.append(published)
    scale("deployment", CONTROLLER, 0)  # else it puts the block back within a second
    saved = current_corefile()
    try:
        set_corefile(corefile.unpatch(saved))
        failed = broken_at("coredns", published, "no k2s-dns server block for")
        assert failed["fix"].startswith(f"kubectl -n {NAMESPACE} scale deployment/{CONTROLLER} --replicas=1")
    finally:
        set_corefile(saved)
        scale("deployment", CONTROLLER, 1)
    wait_for(converged, 120, "controller converged", diagnostics)
    assert service_probe.failures_since(start) == []


def test_certificate_mount_removed(published, healthy_again, service_probe):
    """The Deployment's rollout is paused meanwhile, so no CoreDNS pod starts without its certificate (the
    session's Service names must keep resolving); the template is put back exactly, so resuming rolls nothing."""
    start = time.time()
    healthy_again.append(published)
    scale("deployment", CONTROLLER, 0)
    deploy = kubectl_json("-n", "kube-system", "get", "deployment", "coredns")
    pod = deploy["spec"]["template"]["spec"]
    c = next(i for i, x in enumerate(pod["containers"]) if x["name"] == "coredns")
    m = next(i for i, x in enumerate(pod["containers"][c]["volumeMounts"]) if x["name"] == "k2s-dns-etcd-client")
    v = next(i for i, x in enumerate(pod["volumes"]) if x["name"] == "k2s-dns-etcd-client")
    mount_path = f"/spec/template/spec/containers/{c}/volumeMounts/{m}"
    volume_path = f"/spec/template/spec/volumes/{v}"
    kubectl("-n", "kube-system", "rollout", "pause", "deployment/coredns")
    try:
        remove = [{"op": "remove", "path": mount_path}, {"op": "remove", "path": volume_path}]
        kubectl("-n", "kube-system", "patch", "deployment", "coredns", "--type=json", "-p", json.dumps(remove))
        failed = broken_at("coredns", published, "lacks the etcd certificate")
        assert "mount /etc/k2s-dns/etcd-client" in failed["detail"]
    finally:
        back = [
            {"op": "add", "path": volume_path, "value": pod["volumes"][v]},
            {"op": "add", "path": mount_path, "value": pod["containers"][c]["volumeMounts"][m]},
        ]
        kubectl("-n", "kube-system", "patch", "deployment", "coredns", "--type=json", "-p", json.dumps(back))
        kubectl("-n", "kube-system", "rollout", "resume", "deployment/coredns")
        scale("deployment", CONTROLLER, 1)
    after = kubectl_json("-n", "kube-system", "get", "deployment", "coredns")["spec"]["template"]
    assert after == deploy["spec"]["template"], "the CoreDNS pod template was not put back exactly"
    kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s")
    wait_for(converged, 120, "controller converged", diagnostics)
    assert service_probe.failures_since(start) == []


def test_network_policy_blocks_coredns_from_etcd(published, healthy_again, service_probe):
    """An egress policy on the CoreDNS pods that allows DNS and the API server only (kube-router enforces it
    in the test cluster). doctor reads the declared policies, so it names the hop the same way on clusters
    whose CNI enforces no NetworkPolicy."""
    start = time.time()
    healthy_again.append(published)
    name = "k2s-dns-e2e-no-etcd"
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            "policyTypes": ["Egress"],
            "egress": [
                {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]},
            ],
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(policy))
    try:
        failed = broken_at("coredns", published, f"NetworkPolicy kube-system/{name}")
        assert "allows none to etcd" in failed["detail"]
        assert failed["fix"].startswith(f"kubectl -n kube-system edit networkpolicy {name}")
    finally:
        kubectl("-n", "kube-system", "delete", "networkpolicy", name, "--ignore-not-found")
    assert service_probe.failures_since(start) == []


def test_image_that_does_not_exist(published, healthy_again, service_probe):
    """The hook image's reference changed to one that does not exist, without --wait: the controller's new
    pod and the restarted etcd pod (its `auth` sidecar) cannot pull it. The registry is a closed port on the
    node's loopback, so the failed pull never sends a query off the machine (ghcr.io would need DNS)."""
    start = time.time()
    healthy_again.append(published)
    user = json.loads(helm("get", "values", RELEASE, "-n", NAMESPACE, "-o", "json").stdout or "{}") or {}
    before = ((user.get("coredns") or {}).get("patch") or {}).get("image") or {}
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["coredns"]["patch"]["image"]
    bad = ["--set", "coredns.patch.image.registry=127.0.0.1:9", "--set", "coredns.patch.image.tag=does-not-exist"]
    helm("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", *bad)
    try:
        failed = broken_at("release", published, "does-not-exist", timeout=180)
        assert "cannot pull image 127.0.0.1:9/k2s-dns/k2s-dns-hook:does-not-exist" in failed["detail"]
        assert f"--set coredns.patch.image.registry={defaults['registry']}" in failed["fix"]
        assert "--set coredns.patch.image.tag=" in failed["fix"]
    finally:
        registry = before.get("registry") or defaults["registry"]
        tag = before.get("tag") or ""
        back = ["--set", f"coredns.patch.image.registry={registry}", "--set", f"coredns.patch.image.tag={tag}"]
        helm("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", *back)
        # A StatefulSet pod that never became ready may wait for ever for the template it was made from
        # (kubernetes/kubernetes#67250): replace it.
        kubectl("-n", NAMESPACE, "delete", "pod", f"{RELEASE}-etcd-0", "--wait=false", "--ignore-not-found")
        kubectl("-n", NAMESPACE, "rollout", "status", f"statefulset/{RELEASE}-etcd", "--timeout=300s")
        kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{CONTROLLER}", "--timeout=300s")
        # ExternalDNS crash-looped while etcd was away: start it afresh instead of waiting out its back-off.
        selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=external-dns"
        kubectl("-n", NAMESPACE, "delete", "pod", "-l", selector, "--wait=false")
        kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{EXTERNAL_DNS}", "--timeout=180s")
    wait_for(converged, 120, "controller converged", diagnostics)
    assert service_probe.failures_since(start) == []
