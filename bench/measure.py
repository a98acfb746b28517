"""The measurements themselves; each returns plain data for results.json."""

from __future__ import annotations

import hashlib
import json
import os
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
from tests.e2e.helpers import (
    NAMESPACE,
    RELEASE,
    ZONE,
    Resolver,
    create_namespace,
    current_corefile,
    etcdctl,
    kubectl,
    kubectl_json,
)

from bench.report import (
    ROW_ETCD_CACHED,
    ROW_ETCD_UNCACHED,
    ROW_MISSES,
    ROW_MISSES_BEFORE,
    ROW_SERVICE,
    ROW_SERVICE_BEFORE,
)
from k2s_dns import corefile

POLL_DEADLINE = 150.0  # longer than the upstream 1 min interval plus a sync
NODE = "k2s-dns-control-plane"
PROGRESS_EVERY = 10.0  # seconds between progress lines while polling
# dnsperf load, the same for every row (chart and peer): 4 clients, at most DNSPERF_MAX_QPS queries a second.
DNSPERF_CLIENTS = 4
DNSPERF_MAX_QPS = 30000


def networking() -> client.NetworkingV1Api:
    # The client library reads $KUBECONFIG when it is imported, before `python -m bench` picks the make-cluster
    # kubeconfig for an unset KUBECONFIG: pass it explicitly.
    config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
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


def poll(resolver: Resolver, pending: Pending, what: str = "") -> dict[str, float]:
    """Query every pending name in turn, while more are being added, until each answers as wanted
    (None: NXDOMAIN); name -> seconds since it was added. Prints a progress line every PROGRESS_EVERY s."""
    done: dict[str, float] = {}
    begin = time.monotonic()
    deadline = begin + POLL_DEADLINE
    report = begin + PROGRESS_EVERY
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
        if what and time.monotonic() >= report:
            report += PROGRESS_EVERY
            state = "still being made" if pending.producing else "all made"
            print(
                f"   {what}: {len(done)} answered, {len(pending.names)} waiting ({state}), "
                f"{time.monotonic() - begin:.0f}/{POLL_DEADLINE:.0f} s",
                flush=True,
            )
        time.sleep(0.02)
    if what:
        print(f"   {what}: {len(done)} answered in {time.monotonic() - begin:.1f} s", flush=True)
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


def create_latency(api, resolver, ns: str, count: int, prequery: bool, tag: str, what: str = "") -> list[float]:
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
    done = poll(resolver, pending, what or f"{count} created ({tag})")
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
    updated = poll(resolver, pending, f"{count} address changes ({tag})")
    pending = Pending()
    produce(pending, [delete(i) for i in range(count)], delays)
    deleted = poll(resolver, pending, f"{count} deletes ({tag})")
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
    print(f"   bulk: {count} created in {created:.1f} s", flush=True)
    done = poll(resolver, pending, f"bulk of {count}")
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


CHART_PARTS = {
    "etcd": (f"{RELEASE}-etcd", "etcd"),
    "external-dns": (f"{RELEASE}-external-dns", "external-dns"),
    "coredns": ("coredns", "coredns"),
}


def footprint(parts: dict[str, tuple[str, str]] | None = None) -> dict[str, dict[str, float]]:
    """Memory (MiB) and CPU (cores, averaged by crictl) of each part (name -> (pod name prefix, container)),
    by default the chart's three, read on the kind node."""
    parts = parts or CHART_PARTS
    if shutil.which("docker") is None:
        return {}
    out = subprocess.run(
        ["docker", "exec", NODE, "crictl", "stats", "-o", "json"], capture_output=True, text=True, check=False
    ).stdout
    if not out:
        return {}
    usage: dict[str, dict[str, float]] = {}
    for stat in json.loads(out).get("stats", []):
        pod = stat["attributes"]["labels"].get("io.kubernetes.pod.name", "")
        container = stat["attributes"]["metadata"]["name"]
        for part, (prefix, name) in parts.items():
            if pod.startswith(prefix) and container == name:
                entry = usage.setdefault(part, {"memory_mib": 0.0, "cpu_cores": 0.0})
                memory = stat.get("memory", {}).get("workingSetBytes", {}).get("value", 0)
                entry["memory_mib"] += round(int(memory) / 2**20, 1)
                nano = stat.get("cpu", {}).get("usageNanoCores", {}).get("value", 0)
                entry["cpu_cores"] += round(int(nano) / 1e9, 3)
    return usage


def configuration(resolver: Resolver, scale: dict, footprint_points: bool) -> dict:
    api = networking()
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    create_namespace(ns)
    try:
        result: dict = {}
        if footprint_points:
            result["footprint"] = {"0": footprint()}
        fresh = create_latency(
            api, resolver, ns, scale["samples"], prequery=False, tag="fresh", what="create (never queried)"
        )
        negative = create_latency(
            api, resolver, ns, scale["samples"], prequery=True, tag="neg", what="create (queried before)"
        )
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


def dnsperf(resolver: Resolver, name: str | list[str], seconds: int, label: str) -> dict:
    """dnsperf against resolver for one name (or a list, asked in turn): DNSPERF_CLIENTS clients, at most
    DNSPERF_MAX_QPS, `seconds` long."""
    names = [name] if isinstance(name, str) else name
    print(f"   dnsperf {label} ({names[0]}{f' and {len(names) - 1} more' if len(names) > 1 else ''}): {seconds} s ...")
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as data:
        data.write("".join(f"{n} A\n" for n in names))
        data.flush()
        args = ["dnsperf", "-s", resolver.host, "-p", str(resolver.port), "-d", data.name, "-l", str(seconds)]
        args += ["-c", str(DNSPERF_CLIENTS), "-Q", str(DNSPERF_MAX_QPS), "-S", "0"]
        try:
            out = subprocess.run(args, capture_output=True, text=True, check=False, timeout=seconds + 60).stdout
        except subprocess.TimeoutExpired:
            out = ""
    row = parse_dnsperf(out)
    print(
        f"   dnsperf {label}: {fmt_number(row['qps'])} qps, {row['avg_latency_ms']:.3f} ms average, "
        f"lost {row['lost']}, answers {row['rcodes'] or '-'}",
        flush=True,
    )
    return row


def fmt_number(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def dnsperf_load(seconds: int) -> dict:
    return {"clients": DNSPERF_CLIENTS, "max_qps": DNSPERF_MAX_QPS, "seconds": seconds}


SERVICE_FQDN = "kubernetes.default.svc.cluster.local"


def search_list_misses(count: int = 50, namespace: str = "default") -> list[str]:
    """What a pod in `namespace` sends for `count` external names before the names themselves (ndots 5):
    each with its three search suffixes, all NXDOMAIN in the cluster domain."""
    out = []
    for i in range(count):
        external = f"www{i}.example.com"
        out += [f"{external}.{namespace}.svc.{ZONE}", f"{external}.svc.{ZONE}", f"{external}.{ZONE}"]
    return out


def relative(row: dict, service: dict) -> dict:
    """The row with its qps as a percentage of the Service name's (same phase of the same run)."""
    if row.get("qps") and service.get("qps"):
        row["vs_service_pct"] = round(100 * row["qps"] / service["qps"])
    return row


def before_install(resolver: Resolver, seconds: int) -> dict:
    """The Service name and the search-list misses with no k2s-dns installed (the run's baseline)."""
    if shutil.which("dnsperf") is None or resolver.tcp:
        return {}
    service = dnsperf(resolver, SERVICE_FQDN, seconds, ROW_SERVICE_BEFORE)
    misses = relative(dnsperf(resolver, search_list_misses(), seconds, ROW_MISSES_BEFORE), service)
    if set(misses["rcodes"]) - {"NXDOMAIN"}:
        raise RuntimeError(f"search-list misses before install answered {misses['rcodes']}, expected NXDOMAIN only")
    return {ROW_SERVICE_BEFORE: service, ROW_MISSES_BEFORE: misses}


def throughput(
    resolver: Resolver, seconds: int, set_cache_zone: Callable[[bool], None] | None = None, before: dict | None = None
) -> dict:
    """dnsperf against CoreDNS, same load, one run: a Service name, a pod's search-list misses for external
    names, an etcd-backed name with the zone's answers cached (chart default) and, through
    set_cache_zone(False), the same name without the cache; `before` (before_install) goes first. Leaves the
    cache on again."""
    if shutil.which("dnsperf") is None or resolver.tcp:
        return {"skipped": "dnsperf not installed or no UDP path to CoreDNS"}
    api = networking()
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    create_namespace(ns)
    name = "perf.cluster.local"
    try:
        api.create_namespaced_ingress(ns, ingress("perf", name))
        set_address(api, ns, "perf", "198.18.200.1")
        resolvable(resolver, name, "198.18.200.1")
        service = dnsperf(resolver, SERVICE_FQDN, seconds, ROW_SERVICE)
        results = {**(before or {}), ROW_SERVICE: service}
        results[ROW_MISSES] = relative(dnsperf(resolver, search_list_misses(), seconds, ROW_MISSES), service)
        if set(results[ROW_MISSES]["rcodes"]) - {"NXDOMAIN"}:
            raise RuntimeError(f"search-list misses answered {results[ROW_MISSES]['rcodes']}, expected NXDOMAIN only")
        results[ROW_ETCD_CACHED] = relative(dnsperf(resolver, name, seconds, ROW_ETCD_CACHED), service)
        if set_cache_zone is not None:
            try:
                print("   switching the zone cache off (coredns.patch.cacheZone=false)", flush=True)
                set_cache_zone(False)
                wait_cache_zone(False)
                resolvable(resolver, name, "198.18.200.1")
                results[ROW_ETCD_UNCACHED] = relative(dnsperf(resolver, name, seconds, ROW_ETCD_UNCACHED), service)
            finally:
                print("   switching the zone cache back on (chart default)", flush=True)
                set_cache_zone(True)
                wait_cache_zone(True)
        return results
    finally:
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def resolvable(resolver: Resolver, name: str, ip: str, timeout: float = 60.0) -> None:
    print(f"   waiting for {name} -> {ip} (at most {timeout:.0f} s)", flush=True)
    _wait(lambda: ip in resolver.query(name, timeout=1.0).records, timeout, f"{name} resolvable", 0.1)


def cache_zone_state(text: str) -> bool | None:
    """Whether the chart's server block for the zone has a cache plugin (True), has none (False), or the
    Corefile carries no block of the chart (None: nothing to switch)."""
    block = corefile.managed_block(text)
    if block is None:
        return None
    return any(d.name == "cache" for d in block.directives)


def wait_cache_zone(on: bool, timeout: float = 240.0) -> None:
    """Bounded wait until the Corefile has the cache stanza as wanted and every CoreDNS pod runs it (the
    controller's Corefile annotation matches and the rollout is complete)."""

    def done() -> bool:
        text = kubectl("-n", "kube-system", "get", "configmap", "coredns", "-o", "jsonpath={.data.Corefile}")
        state = cache_zone_state(text)
        deploy = _coredns()
        annotations = deploy["spec"]["template"]["metadata"].get("annotations") or {}
        runs_it = annotations.get("k2s-dns.io/corefile-sha256") == hashlib.sha256(text.encode()).hexdigest()
        return state in (on, None) and runs_it and _rolled_out(deploy)

    print(f"   waiting for CoreDNS to run the Corefile with the zone cache {'on' if on else 'off'}", flush=True)
    start = time.monotonic()
    _wait(done, timeout, f"CoreDNS with the zone cache {'on' if on else 'off'} (release {NAMESPACE}/{RELEASE})", 1.0)
    print(f"   CoreDNS runs it after {time.monotonic() - start:.1f} s", flush=True)


def parse_dnsperf(out: str) -> dict:
    def number(pattern: str) -> float | None:
        match = re.search(pattern, out)
        return float(match.group(1)) if match else None

    codes = re.search(r"Response codes:\s+(.*)", out)
    rcodes = {code: int(n) for code, n in re.findall(r"([A-Z]+) (\d+) \(", codes.group(1))} if codes else {}
    return {
        "qps": number(r"Queries per second:\s+([\d.]+)"),
        "rcodes": rcodes,
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


def _published(resolver: Resolver, name: str, ip: str) -> tuple[str, Callable[[], bool]]:
    """A namespace of its own with an Ingress `name`.cluster.local at `ip`, resolvable; returns the namespace
    and the check that the name answers `ip`."""
    api = networking()
    ns = f"bench-{name}-{uuid.uuid4().hex[:5]}"
    create_namespace(ns)
    host = f"{name}.{ZONE}"
    api.create_namespaced_ingress(ns, ingress(name, host))
    set_address(api, ns, name, ip)

    def answers() -> bool:
        return ip in resolver.query(host).records

    _wait(answers, 60, f"{host} resolvable")
    return ns, answers


def kubeadm_heal(resolver: Resolver, runs: int) -> dict:
    """kubeadm's CoreDNS addon phase (what `kubeadm upgrade apply` runs for CoreDNS), `runs` times: seconds
    from the end of the phase until the controller has put the certificate mounts back, and until the
    rollout is complete with an etcd name answering from every answer in a row of 5."""
    ns, name_ok = _published(resolver, "heal", "198.18.200.1")
    mounts: list[float] = []
    healed: list[float] = []
    try:
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


def rollback_follow(
    resolver: Resolver, runs: int, upgrade: Callable[[list[str]], None], rollback: Callable[[], None]
) -> dict:
    """`helm rollback` across an etcd.prefix change, `runs` times: seconds from the start of the rollback until the
    controller has written the old prefix into the Corefile, and until CoreDNS's rollout is complete with an
    etcd name (published again by ExternalDNS on the old prefix) answering 5 times in a row. e2e checks that it
    happens; this is where how fast lives."""
    ns, name_ok = _published(resolver, "rollback", "198.18.201.1")
    corefile: list[float] = []
    answered: list[float] = []
    try:
        for run in range(runs):
            upgrade(["--set", "etcd.prefix=/skydns2"])
            _wait(lambda: "path /skydns2" in current_corefile(), 120, "Corefile on /skydns2")
            _wait(lambda: _rolled_out(_coredns()) and name_ok(), 180, "name on /skydns2")
            end = time.monotonic()  # from the start of `helm rollback` (without --wait, as it is usually run)
            rollback()
            _wait(lambda: "path /skydns\n" in current_corefile(), 120, "Corefile back on /skydns")
            corefile.append(time.monotonic() - end)
            _wait(lambda: _rolled_out(_coredns()) and all(name_ok() for _ in range(5)), 180, "name after rollback")
            answered.append(time.monotonic() - end)
            print(
                f"   rollback run {run + 1}/{runs}: Corefile {corefile[-1]:.2f}s, name answers {answered[-1]:.2f}s",
                flush=True,
            )
    finally:
        kubectl("delete", "namespace", ns, "--wait=false")
    return {"corefile": percentiles(corefile), "answered": percentiles(answered)}


def _wait(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: {what} not reached within {timeout:.0f}s")
        time.sleep(interval)
