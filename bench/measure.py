"""The measurements themselves; each returns plain data for results.json."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable

from kubernetes import client, config
from tests.e2e.helpers import RELEASE, Resolver, etcdctl, kubectl, kubectl_json

POLL_DEADLINE = 150.0  # longer than the upstream 1 min interval plus a sync
NODE = "k2s-dns-control-plane"


def networking() -> client.NetworkingV1Api:
    config.load_kube_config()
    return client.NetworkingV1Api()


def ingress(name: str, host: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"rules": [{"host": host}]}}


def set_address(api: client.NetworkingV1Api, ns: str, name: str, ip: str) -> None:
    api.patch_namespaced_ingress_status(name, ns, {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})


def address(i: int) -> str:
    return f"198.18.{i // 250}.{i % 250 + 1}"  # RFC 2544 benchmarking range: data only, never contacted


class Pending:
    """Names waiting for an answer, shared by the thread that creates the objects and the poller."""

    def __init__(self):
        self.lock = threading.Lock()
        self.names: dict[str, tuple[float, set[str] | None]] = {}
        self.producing = True

    def add(self, name: str, want: set[str] | None) -> None:
        with self.lock:
            self.names[name] = (time.monotonic(), want)


def poll(resolver: Resolver, pending: Pending) -> dict[str, float]:
    """Query every pending name in turn, while more are being added, until each answers as wanted
    (None: NXDOMAIN); name -> seconds since it was added."""
    done: dict[str, float] = {}
    deadline = time.monotonic() + POLL_DEADLINE
    while (pending.producing or pending.names) and time.monotonic() < deadline:
        with pending.lock:
            items = list(pending.names.items())
        for name, (start, want) in items:
            answer = resolver.query(name, timeout=1.0)
            ok = answer.rcode == "NXDOMAIN" if want is None else (answer.rcode == "NOERROR" and answer.records == want)
            if ok:
                done[name] = time.monotonic() - start
                with pending.lock:
                    del pending.names[name]
        time.sleep(0.02)
    return done


def produce(pending: Pending, steps: list[Callable[[], tuple[str, set[str] | None]]], delays: list[float]) -> None:
    """Run each step at its delay (seconds from now) in a thread; each step returns (name, wanted answer)."""

    def run() -> None:
        begin = time.monotonic()
        try:
            for step, delay in zip(steps, delays, strict=True):
                time.sleep(max(0.0, begin + delay - time.monotonic()))
                pending.add(*step())
        finally:
            pending.producing = False

    threading.Thread(target=run, daemon=True).start()


def percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"n": len(values), "p50": pct(0.5), "p95": pct(0.95), "max": round(ordered[-1], 3)}


def create_latency(api, resolver, ns: str, count: int, prequery: bool, tag: str) -> list[float]:
    """Ingresses created one by one at random moments while CoreDNS is polled; each one's time from
    having an address to being answered."""

    def step(i: int):
        def create() -> tuple[str, set[str]]:
            name, host = f"{tag}-{i}", f"{tag}-{i}.cluster.local"
            if prequery:
                resolver.query(host)  # NXDOMAIN now; shows whether a negative answer lingers
            api.create_namespaced_ingress(ns, ingress(name, host))
            set_address(api, ns, name, address(i))
            return host, {address(i)}

        return create

    pending = Pending()
    delays = sorted(random.uniform(0, max(10.0, count * 0.3)) for _ in range(count))
    produce(pending, [step(i) for i in range(count)], delays)
    done = poll(resolver, pending)
    return list(done.values()) + [POLL_DEADLINE] * (count - len(done))


def update_delete_latency(api, resolver, ns: str, count: int, tag: str) -> tuple[list[float], list[float]]:
    def update(i: int):
        def run() -> tuple[str, set[str]]:
            set_address(api, ns, f"{tag}-{i}", address(i + 500))
            return f"{tag}-{i}.cluster.local", {address(i + 500)}

        return run

    def delete(i: int):
        def run() -> tuple[str, None]:
            api.delete_namespaced_ingress(f"{tag}-{i}", ns)
            return f"{tag}-{i}.cluster.local", None

        return run

    delays = sorted(random.uniform(0, count * 0.5) for _ in range(count))
    pending = Pending()
    produce(pending, [update(i) for i in range(count)], delays)
    updated = poll(resolver, pending)
    pending = Pending()
    produce(pending, [delete(i) for i in range(count)], delays)
    deleted = poll(resolver, pending)
    return list(updated.values()), list(deleted.values())


def bulk(api, resolver, ns: str, count: int) -> dict:
    """count Ingresses at once: when does each resolve, counted from the first create?"""
    start = time.monotonic()
    for i in range(count):
        api.create_namespaced_ingress(ns, ingress(f"bulk-{i}", f"bulk-{i}.cluster.local"))
        set_address(api, ns, f"bulk-{i}", address(i))
    created = time.monotonic() - start
    pending = Pending()
    pending.names = {f"bulk-{i}.cluster.local": (start, {address(i)}) for i in range(count)}
    pending.producing = False
    done = poll(resolver, pending)
    return {
        "count": count,
        "create_seconds": round(created, 2),
        "resolved": len(done),
        "all_resolved_seconds": round(max(done.values()), 2) if len(done) == count else None,
        "curve": sorted(round(v, 3) for v in done.values()),
        "etcd_keys": etcd_key_count(),
    }


def etcd_key_count() -> int:
    out = etcdctl("get", "--prefix", "/skydns", "--count-only", "-w", "fields")
    match = re.search(r'"Count"\s*:\s*(\d+)', out)
    return int(match.group(1)) if match else -1


def footprint() -> dict[str, dict[str, float]]:
    """Memory (MiB) and CPU (cores, averaged by crictl) of the three parts, read on the kind node."""
    if shutil.which("docker") is None:
        return {}
    out = subprocess.run(
        ["docker", "exec", NODE, "crictl", "stats", "-o", "json"], capture_output=True, text=True, check=False
    ).stdout
    if not out:
        return {}
    wanted = {"etcd": f"{RELEASE}-etcd", "external-dns": f"{RELEASE}-external-dns", "coredns": "coredns"}
    usage: dict[str, dict[str, float]] = {}
    for stat in json.loads(out).get("stats", []):
        pod = stat["attributes"]["labels"].get("io.kubernetes.pod.name", "")
        container = stat["attributes"]["metadata"]["name"]
        for part, prefix in wanted.items():
            if pod.startswith(prefix) and container in ("etcd", "external-dns", "coredns"):
                entry = usage.setdefault(part, {"memory_mib": 0.0, "cpu_cores": 0.0})
                memory = stat.get("memory", {}).get("workingSetBytes", {}).get("value", 0)
                entry["memory_mib"] += round(int(memory) / 2**20, 1)
                nano = stat.get("cpu", {}).get("usageNanoCores", {}).get("value", 0)
                entry["cpu_cores"] += round(int(nano) / 1e9, 3)
    return usage


def configuration(resolver: Resolver, scale: dict, footprint_points: bool) -> dict:
    api = networking()
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    try:
        result: dict = {}
        if footprint_points:
            result["footprint"] = {"0": footprint()}
        fresh = create_latency(api, resolver, ns, scale["samples"], prequery=False, tag="fresh")
        negative = create_latency(api, resolver, ns, scale["samples"], prequery=True, tag="neg")
        updated, deleted = update_delete_latency(api, resolver, ns, max(5, scale["samples"] // 5), "fresh")
        result["create_fresh"] = {**percentiles(fresh), "samples": sorted(round(v, 3) for v in fresh)}
        result["create_after_nxdomain"] = {**percentiles(negative), "samples": sorted(round(v, 3) for v in negative)}
        result["update"] = percentiles(updated)
        result["delete"] = percentiles(deleted)
        print(f"   create p95 {result['create_fresh'].get('p95')} s", flush=True)
        if footprint_points:
            result["footprint"][str(len(kubectl_json("-n", ns, "get", "ingress")["items"]))] = footprint()
        result["bulk"] = bulk(api, resolver, ns, scale["bulk"])
        if footprint_points:
            time.sleep(5)
            result["footprint"][str(scale["bulk"] + 2 * scale["samples"])] = footprint()
        return result
    finally:
        kubectl("delete", "namespace", ns, "--wait=true", "--timeout=300s", check=False)


def throughput(resolver: Resolver, seconds: int) -> dict:
    """dnsperf against CoreDNS: an etcd-backed name versus a Service name, same load."""
    if shutil.which("dnsperf") is None or resolver.tcp:
        return {"skipped": "dnsperf not installed or no UDP path to CoreDNS"}
    api = networking()
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    try:
        api.create_namespaced_ingress(ns, ingress("perf", "perf.cluster.local"))
        set_address(api, ns, "perf", "198.18.200.1")
        pending = Pending()
        pending.add("perf.cluster.local", {"198.18.200.1"})
        pending.producing = False
        poll(resolver, pending)
        results = {}
        for label, name in (
            ("etcd name", "perf.cluster.local"),
            ("Service name", "kubernetes.default.svc.cluster.local"),
        ):
            with tempfile.NamedTemporaryFile("w", suffix=".txt") as data:
                data.write(f"{name} A\n")
                data.flush()
                out = subprocess.run(
                    [
                        "dnsperf",
                        "-s",
                        resolver.host,
                        "-p",
                        str(resolver.port),
                        "-d",
                        data.name,
                        "-l",
                        str(seconds),
                        "-c",
                        "4",
                        "-Q",
                        "5000",
                        "-S",
                        "0",
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout
            results[label] = parse_dnsperf(out)
        return results
    finally:
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def parse_dnsperf(out: str) -> dict:
    def number(pattern: str) -> float | None:
        match = re.search(pattern, out)
        return float(match.group(1)) if match else None

    return {
        "qps": number(r"Queries per second:\s+([\d.]+)"),
        "lost": number(r"Queries lost:\s+(\d+)"),
        "avg_latency_ms": (number(r"Average Latency \(s\):\s+([\d.]+)") or 0) * 1000,
        "max_latency_ms": (number(r"max ([\d.]+)\)") or 0) * 1000,
    }


def _coredns() -> dict:
    return kubectl_json("-n", "kube-system", "get", "deployment", "coredns")


def _mounted(deploy: dict) -> bool:
    volumes = deploy["spec"]["template"]["spec"].get("volumes", [])
    return any(v.get("name") == "k2s-dns-etcd-client" for v in volumes)


def _rolled_out(deploy: dict) -> bool:
    spec, status = deploy["spec"], deploy.get("status", {})
    want = spec.get("replicas", 1)
    return status.get("observedGeneration", 0) >= deploy["metadata"].get("generation", 0) and status.get(
        "updatedReplicas"
    ) == want == status.get("replicas") == status.get("availableReplicas")


def kubeadm_heal(resolver: Resolver, runs: int) -> dict:
    """kubeadm's CoreDNS addon phase (what `kubeadm upgrade apply` runs for CoreDNS), `runs` times: seconds
    from the end of the phase until the controller has put the certificate mounts back, and until the
    rollout is complete with an etcd name answering from every answer in a row of 5."""
    api = networking()
    ns = f"bench-heal-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", ns)
    mounts: list[float] = []
    healed: list[float] = []
    try:
        api.create_namespaced_ingress(ns, ingress("heal", "heal.cluster.local"))
        set_address(api, ns, "heal", "198.18.200.1")
        name_ok = lambda: "198.18.200.1" in resolver.query("heal.cluster.local").records  # noqa: E731
        _wait(name_ok, 60, "heal.cluster.local resolvable")
        for run in range(runs):
            subprocess.run(
                [
                    "docker",
                    "exec",
                    NODE,
                    "kubeadm",
                    "init",
                    "phase",
                    "addon",
                    "coredns",
                    "--config",
                    "/kind/kubeadm.conf",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            end = time.monotonic()
            _wait(lambda: _mounted(_coredns()), 60, "mounts back")
            mounts.append(time.monotonic() - end)
            _wait(lambda: _rolled_out(_coredns()) and all(name_ok() for _ in range(5)), 180, "CoreDNS healed")
            healed.append(time.monotonic() - end)
            print(
                f"   kubeadm heal run {run + 1}/{runs}: mounts back {mounts[-1]:.2f}s, healed {healed[-1]:.2f}s",
                flush=True,
            )
            time.sleep(3)  # let the old pods finish terminating before the next replacement
    finally:
        kubectl("delete", "namespace", ns, "--wait=false")
    return {"mounts": percentiles(mounts), "healed": percentiles(healed)}


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: {what} not reached within {timeout:.0f}s")
        time.sleep(0.05)
