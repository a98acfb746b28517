"""Helpers for the e2e suite: DNS queries, polling with a deadline, kubectl."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from tests.conftest import REPO

NAMESPACE = os.environ.get("E2E_RELEASE_NAMESPACE", "k2s-dns")
RELEASE = "k2s-dns"
ZONE = "cluster.local"


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    result = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


# The chart's default namespace label for trusted publishers (values.yaml publicationPolicy.trustedNamespaceLabel).
TRUSTED_LABEL = "k2s-dns.io/trusted-publisher"


def create_namespace(name: str, trusted: bool = True) -> None:
    """A namespace for test objects. Trusted: it may publish any name of the cluster domain (most tests use
    `<host>.cluster.local` hosts, as K2s's addons do); the publication policy tests use untrusted ones."""
    # The label comes with the namespace, not after it: admission reads namespaces from an informer, which
    # may not have seen a later label change when the first Ingress arrives.
    labels = {TRUSTED_LABEL: "true"} if trusted else {}
    kubectl(
        "create",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}),
    )


def kubectl_json(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json"))


def etcdctl(*args: str, as_root: bool = True, check: bool = True, pod: str = f"{RELEASE}-etcd-0") -> str:
    """etcdctl inside the bundled etcd pod over TLS with the server certificate, as etcd's root user when
    authentication is on (as_root=False: as the certificate's CN, which is no etcd user)."""
    tls = ["--cacert=/etc/etcd/tls/ca.crt", "--cert=/etc/etcd/tls/tls.crt", "--key=/etc/etcd/tls/tls.key"]
    user = []
    if as_root:
        secret = f"{RELEASE}-etcd-root"
        encoded = kubectl(
            "-n", NAMESPACE, "get", "secret", secret, "--ignore-not-found", "-o", "jsonpath={.data.password}"
        )
        if encoded:
            user = [f"--user=root:{base64.b64decode(encoded).decode()}"]
    exec_etcdctl = ["-n", NAMESPACE, "exec", pod, "-c", "etcd", "--", "etcdctl"]
    return kubectl(*exec_etcdctl, "--endpoints=https://127.0.0.1:2379", *tls, *user, *args, check=check)


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["helm", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass(frozen=True)
class Answer:
    rcode: str
    records: frozenset[str]

    def __str__(self) -> str:
        return f"{self.rcode} {sorted(self.records)}"


@dataclass
class Resolver:
    """Asks CoreDNS directly (never the machine's resolver): UDP, or TCP through a port-forward."""

    host: str
    port: int
    tcp: bool = False

    def query(self, name: str, rdtype: str = "A", timeout: float = 2.0) -> Answer:
        message = dns.message.make_query(name, rdtype)
        try:
            if self.tcp:
                response = dns.query.tcp(message, self.host, port=self.port, timeout=timeout)
            else:
                response = dns.query.udp(message, self.host, port=self.port, timeout=timeout)
        except (dns.exception.Timeout, OSError) as err:
            return Answer(f"ERROR({type(err).__name__})", frozenset())
        records = frozenset(
            item.to_text()
            for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.from_text(rdtype)
            for item in rrset
        )
        return Answer(dns.rcode.to_text(response.rcode()), records)


PROGRESS_EVERY = 30.0


def progress(message: str) -> None:
    """A line on the terminal while a test runs (conftest replaces this with one that bypasses capture)."""


def wait_for(
    check: Callable[[], Any], timeout: float, what: str, context: Callable[[], str] | None = None, interval: float = 0.2
) -> Any:
    """Poll check() until it returns something truthy; fail with what was expected and what was seen. A wait
    longer than PROGRESS_EVERY seconds says, on the terminal, what it waits for and how long it may still take."""
    began = time.monotonic()
    deadline = began + timeout
    last: Any = None
    told = began
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
        now = time.monotonic()
        if now - told >= PROGRESS_EVERY:
            told = now
            progress(f"still waiting for {what}: {now - began:.0f}s of at most {timeout:.0f}s")
    detail = context() if context else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last result: {last!r}\n{detail}")


def resolves_to(resolver: Resolver, name: str, expected: set[str], rdtype: str = "A") -> Callable[[], Answer | None]:
    def check() -> Answer | None:
        answer = resolver.query(name, rdtype)
        return answer if answer.rcode == "NOERROR" and set(answer.records) == expected else None

    return check


# The zone's server block caches NXDOMAIN for a second (corefile._zone_block_lines: `denial 9984 1 1`): a
# CoreDNS replica asked for a name in the second before it was published may deny it that much longer.
DENIAL_TTL = 1.0


def wait_published(resolver: Resolver, host: str, expected: set[str], timeout: float, what: str) -> None:
    """Until `host` answers `expected`, and then as long as another replica may still deny it."""
    wait_for(resolves_to(resolver, host, expected), timeout, what, diagnostics)
    time.sleep(DENIAL_TTL + 0.2)


def is_nxdomain(resolver: Resolver, name: str) -> Callable[[], bool]:
    return lambda: resolver.query(name).rcode == "NXDOMAIN"


def diagnostics() -> str:
    """Logs that explain a DNS failure: ExternalDNS, CoreDNS and the Corefile."""
    parts = []
    for args in (
        ("-n", NAMESPACE, "logs", f"deploy/{RELEASE}-external-dns", "--tail=30"),
        ("-n", "kube-system", "logs", "deploy/coredns", "--tail=20"),
        ("-n", "kube-system", "get", "configmap", "coredns", "-o", "jsonpath={.data.Corefile}"),
    ):
        parts.append(f"--- kubectl {' '.join(args)}\n{kubectl(*args, check=False)}")
    return "\n".join(parts)


@dataclass
class ServiceProbe:
    """Resolves a Service name every `interval` s in the background and keeps every failure.

    A failure is a query that fails twice in a row (a real stub resolver retries once too).
    """

    resolver: Resolver
    name: str
    expected: str
    interval: float = 0.25
    failures: list[tuple[float, str]] = field(default_factory=list)
    count: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> ServiceProbe:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            first = self.resolver.query(self.name, timeout=1.0)
            if self.expected not in first.records:
                second = self.resolver.query(self.name, timeout=1.0)
                if self.expected not in second.records:
                    self.failures.append((time.time(), f"{first} / {second}"))
            self.count += 1
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop.set()

    def expected_outage(self, start: float, end: float) -> list[tuple[float, str]]:
        """Take the failures in [start, end] out of the record (a test that measures an outage it
        causes on purpose reports them itself) and return them."""
        taken = [f for f in self.failures if start <= f[0] <= end]
        self.failures[:] = [f for f in self.failures if f not in taken]
        return taken

    def failures_since(self, start: float) -> list[tuple[float, str]]:
        return [f for f in self.failures if f[0] >= start]


@contextlib.contextmanager
def cluster_dns(nodeport: str | None = None) -> Iterator[Resolver]:
    """CoreDNS as seen from this machine: a NodePort mapped to loopback (kind, see tests/cluster),
    else a kubectl port-forward (TCP). Removes what it created."""
    nodeport = nodeport or os.environ.get("E2E_DNS_NODEPORT")
    if nodeport:
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "k2s-dns-e2e-dns", "namespace": "kube-system"},
            "spec": {
                "type": "NodePort",
                "selector": {"k8s-app": "kube-dns"},
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP", "nodePort": int(nodeport)},
                    {"name": "dns-tcp", "port": 53, "targetPort": 53, "protocol": "TCP", "nodePort": int(nodeport)},
                ],
            },
        }
        kubectl("apply", "-f", "-", stdin=json.dumps(service))
        resolver = Resolver("127.0.0.1", int(nodeport))
        try:
            wait_for(lambda: resolver.query("kubernetes.default.svc.cluster.local").records, 60, "CoreDNS NodePort")
            yield resolver
        finally:
            kubectl("-n", "kube-system", "delete", "service", "k2s-dns-e2e-dns", "--ignore-not-found")
        return
    port = free_port()
    forward = subprocess.Popen(
        ["kubectl", "-n", "kube-system", "port-forward", "svc/kube-dns", f"{port}:53"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    resolver = Resolver("127.0.0.1", port, tcp=True)
    try:
        wait_for(lambda: resolver.query("kubernetes.default.svc.cluster.local").records, 60, "CoreDNS port-forward")
        yield resolver
    finally:
        forward.terminate()
        forward.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def restart_coredns_pods() -> None:
    """Pod by pod, as a node drain would (a rollout restart would change the Deployment, which the
    uninstall test expects back exactly as it was before install)."""
    kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s")
    replicas = kubectl("-n", "kube-system", "get", "deployment", "coredns", "-o", "jsonpath={.spec.replicas}")
    pods = kubectl("-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns", "-o", "name").split()
    for pod in pods:
        kubectl("-n", "kube-system", "delete", pod, "--wait=true", "--ignore-not-found")
        kubectl("-n", "kube-system", "wait", "--for=condition=Available", "deployment/coredns", "--timeout=180s")
        wait_for(
            lambda: (
                kubectl("-n", "kube-system", "get", "deployment", "coredns", "-o", "jsonpath={.status.readyReplicas}")
                == replicas
            ),
            120,
            "CoreDNS back to full strength",
        )


def current_corefile() -> str:
    """The cluster's Corefile as it is now."""
    return kubectl("-n", "kube-system", "get", "configmap", "coredns", "-o", "jsonpath={.data.Corefile}")


def controller_status() -> dict:
    cm = kubectl_json("-n", NAMESPACE, "get", "configmap", f"{RELEASE}-controller-status")
    return json.loads((cm.get("data") or {}).get("status.json", "{}"))


def converged() -> bool:
    return controller_status().get("phase") == "Converged"


def coredns_runs(check: Callable[[str], bool]) -> Callable[[], bool]:
    """The Corefile passes check, the controller has converged and every CoreDNS pod runs that Corefile
    (the Deployment's rollout carries its digest and is complete)."""

    def done() -> bool:
        text = current_corefile()
        deploy = kubectl_json("-n", "kube-system", "get", "deployment", "coredns")
        status = deploy.get("status", {})
        rolled = (
            status.get("observedGeneration") == deploy["metadata"]["generation"]
            and status.get("updatedReplicas") == status.get("replicas") == status.get("readyReplicas")
            and not status.get("unavailableReplicas")
        )
        annotations = deploy["spec"]["template"]["metadata"].get("annotations", {})
        runs_it = annotations.get("k2s-dns.io/corefile-sha256") == hashlib.sha256(text.encode()).hexdigest()
        return check(text) and runs_it and rolled and converged()

    return done


def set_corefile(text: str) -> None:
    """Replace the cluster's Corefile as an administrator would (kubectl replace)."""
    cm = kubectl_json("-n", "kube-system", "get", "configmap", "coredns")
    cm["data"]["Corefile"] = text
    kubectl("replace", "-f", "-", stdin=json.dumps(cm))


def revision() -> int:
    """The release's current Helm revision."""
    return int(json.loads(helm("status", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)["version"])


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


@contextlib.contextmanager
def etcd_down(resolver: Resolver, host: str, address: str) -> Iterator[float]:
    """The chart's etcd scaled to 0 (pods gone) for the `with` block, which gets the time it went down; then
    scaled back, until the published `host` answers `address` again (ExternalDNS may sit in its back-off)."""
    kubectl("-n", NAMESPACE, "scale", "statefulset", f"{RELEASE}-etcd", "--replicas=0")
    try:
        selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=etcd"
        wait_for(lambda: not kubectl_json("-n", NAMESPACE, "get", "pods", "-l", selector)["items"], 120, "etcd gone")
        yield time.time()
    finally:
        kubectl("-n", NAMESPACE, "scale", "statefulset", f"{RELEASE}-etcd", "--replicas=1")
        kubectl("-n", NAMESPACE, "rollout", "status", f"statefulset/{RELEASE}-etcd", "--timeout=180s")
        wait_for(resolves_to(resolver, host, {address}), 240, "published name back", diagnostics, interval=1)


def glibc_lookup(namespace: str, pod: str, name: str) -> set[str]:
    """IPv4 addresses glibc's getaddrinfo finds for `name` in a pod with getent (its search list applied)."""
    out = kubectl("-n", namespace, "exec", pod, "--", "getent", "ahostsv4", name, check=False)
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def musl_lookup(namespace: str, pod: str, name: str) -> set[str]:
    """The same through musl's getaddrinfo, in a pod of the musl-client image (`/resolve NAME`)."""
    out = kubectl("-n", namespace, "exec", pod, "--", "/resolve", name, check=False)
    match = re.match(rf"{re.escape(name)} ok (\S+)", out.strip())
    return {a for a in match.group(1).split(",") if ":" not in a} if match else set()


def musl_pod(name: str, namespace: str) -> dict:
    """A sleeper pod of the musl-client image (versions.env MUSL_CLIENT_IMAGE)."""
    return sleeper_pod(name, namespace, version("MUSL_CLIENT_IMAGE"), command=("/resolve", "sleep"))


def version(key: str) -> str:
    """A pin from versions.env (KEY=value lines)."""
    for line in (REPO / "versions.env").read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"versions.env has no {key}")


def sleeper_pod(
    name: str,
    namespace: str,
    image: str,
    labels: dict | None = None,
    node: str | None = None,
    command: tuple[str, ...] = ("sleep", "infinity"),
) -> dict:
    """A pod that only sleeps (the chart's image: Python, the doctor's DNS client, glibc's resolver),
    restricted Pod Security, to run probes in with `kubectl exec`; pinned to `node` when given."""
    spec: dict = {
        "terminationGracePeriodSeconds": 0,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "probe",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": list(command),
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": spec,
    }
