"""The hops in order: gather (cluster.py), check (checks.py), stop at the first FAIL."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import checks, cluster, dnsquery
from .checks import FAIL, SKIP, Names, Result


@dataclass
class Report:
    names: Names
    host: str | None
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> str | None:
        return next((r.hop for r in self.results if r.status == FAIL), None)

    @property
    def ok(self) -> bool:
        return self.failed is None

    def to_dict(self) -> dict:
        return {
            "host": self.host,
            "release": self.names.release,
            "namespace": self.names.namespace,
            "ok": self.ok,
            "failed": self.failed,
            "seconds": round(self.seconds, 2),
            "hops": [r.to_dict() for r in self.results],
        }


def plan(host: str | None) -> list[str]:
    """Without HOST: the installation as a whole (release, ExternalDNS, etcd's record count, CoreDNS)."""
    if host:
        return list(checks.HOPS)
    return ["release", "external-dns", "etcd", "coredns"]


def run(
    kube,
    names: Names,
    host: str | None = None,
    *,
    servers: list[dict] | None = None,
    direct: bool = True,
    local: bool = True,
    query: Callable[..., dict] | None = None,
    lookup: Callable[..., dict] | None = None,
    now: Callable[[], float] = time.time,
    platform: str = sys.platform,
) -> Report:
    """servers: extra DNS servers to ask ({server, port, what}), e.g. a NodePort from --server; direct=False:
    ask only those (not the CoreDNS pods and the cluster DNS Service); local=False: skip this machine's resolver."""
    started = time.monotonic()
    query = query or dnsquery.query
    lookup = lookup or dnsquery.local_lookup
    host = checks.fqdn(host) if host else None
    report = Report(names, host)
    ctx: dict = {}

    def release() -> Result:
        facts = cluster.gather_release(kube, names)
        result = checks.check_release(names, facts)
        if result.status != FAIL:
            cm = facts["desired_cm"]
            ctx["desired_raw"] = json.loads(cm["data"]["desired.json"])
            ctx["desired"] = checks.desired_of(ctx["desired_raw"])
            ctx["mode"] = checks.mode_of(cm, facts["etcd"])
            ctx["external_dns"] = facts["external_dns"]
            ctx["controller"] = facts["controller"]
            ctx["etcd"] = facts["etcd"]
            ctx["settings"] = checks.external_dns_settings(checks.container_args(facts["external_dns"]))
        return result

    def source() -> Result:
        facts = cluster.gather_source(kube, host, ctx["desired"].zone, ctx["settings"])
        facts["desired"] = ctx["desired"]
        facts["namespace_labels"] = cluster.namespace_labels(kube, checks.publisher_namespaces(host, facts))
        result = checks.check_source(names, facts)
        ctx["targets"] = result.data.get("targets")
        return result

    def external_dns() -> Result:
        facts = cluster.gather_external_dns(kube, names, ctx["external_dns"], host, now())
        return checks.check_external_dns(names, facts)

    def etcd() -> Result:
        facts = cluster.gather_etcd(kube, names, ctx["desired"], ctx["mode"], ctx["etcd"], host)
        facts.update(
            owner_id=ctx["settings"]["txt_owner_id"],
            txt_prefix=ctx["settings"]["txt_prefix"],
            targets=ctx.get("targets"),
        )
        result = checks.check_etcd(names, facts)
        if host and result.status != SKIP:
            ctx["etcd_values"] = (result.data.get("records") or {}).get(host)
        return result

    def coredns() -> Result:
        facts = cluster.gather_coredns(
            kube, names, ctx["desired"], ctx["desired_raw"], ctx["mode"], ctx["controller"], now()
        )
        ctx["coredns_pods"] = facts["pods"]
        return checks.check_coredns(names, facts)

    def answer() -> Result:
        if ctx.get("etcd_values") is not None:
            expected, origin = ctx["etcd_values"], "etcd"
        else:
            expected, origin = ctx.get("targets") or [], "its objects"
        ctx["expected"] = expected
        found = cluster.dns_servers(kube, ctx["desired"], ctx.get("coredns_pods") or []) if direct else []
        targets = found + list(servers or [])
        ctx["dns_servers"] = targets
        rdtype = checks.expected_rdtype(sorted(expected))

        def ask(target: dict) -> dict:
            return {**target, **query(target["server"], host, rdtype, port=target.get("port", 53))}

        with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            answers = list(pool.map(ask, targets))
        facts = {
            "host": host,
            "expected": expected,
            "expected_from": origin,
            "rdtype": rdtype,
            "answers": answers,
            "coredns_namespace": ctx["desired"].namespace,
            "coredns_deployment": ctx["desired"].deployment,
        }
        return checks.check_answer(names, facts)

    def workstation() -> Result:
        if not local:
            return Result("workstation", SKIP, "this machine's resolver was not asked (--no-local)")
        extra = [s["server"] for s in servers or []]
        service = [s["server"] for s in ctx.get("dns_servers") or [] if s["what"].startswith("Service")]
        facts = {
            "host": host,
            "zone": ctx["desired"].zone,
            "expected": ctx.get("expected") or [],
            "lookup": lookup(host),
            "dns_ip": (extra or service or [""])[0],
            "platform": platform,
        }
        return checks.check_workstation(names, facts)

    steps = {
        "release": release,
        "source": source,
        "external-dns": external_dns,
        "etcd": etcd,
        "coredns": coredns,
        "answer": answer,
        "workstation": workstation,
    }
    hops = plan(host)
    for i, hop in enumerate(hops):
        try:
            result = steps[hop]()
        except cluster.KubeError as err:
            fix = (
                "doctor needs read access to the release, kube-system and Ingresses: "
                f"kubectl auth can-i --list -n {names.namespace}"
                if err.status in (401, 403)
                else "kubectl cluster-info   # check KUBECONFIG, --kubeconfig or --context"
            )
            result = Result(hop, FAIL, f"cannot read from the API server: {err}", fix)
        except Exception as err:  # a bug or an object shaped unlike anything seen: name it, do not crash
            result = Result(hop, FAIL, f"doctor could not check this hop: {type(err).__name__}: {err}")
        report.results.append(result)
        if result.status == FAIL:
            report.results += [Result(h, SKIP, f"not checked: {hop} failed first") for h in hops[i + 1 :]]
            break
    report.seconds = time.monotonic() - started
    return report
