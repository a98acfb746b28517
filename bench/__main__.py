"""make bench: propagation latency, bulk scale, DNS throughput and footprint, two configurations, and the
nearest peer (k8s_gateway) measured the same way.

    python -m bench [--scale small|full] [--out bench/results] [--only SECTION ...]

Needs KUBECONFIG (make cluster writes one under ~/.cache/k2s-dns). Every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from tests.e2e.helpers import NAMESPACE, RELEASE, cluster_dns, helm, kubectl

from bench import measure, peer, report

CHART = Path(__file__).resolve().parent.parent / "charts" / "k2s-dns"
SCALES = {
    "small": {"samples": 20, "bulk": 100, "dnsperf_seconds": 5, "heal_runs": 10, "rollback_runs": 3},
    "full": {"samples": 100, "bulk": 1000, "dnsperf_seconds": 10, "heal_runs": 10, "rollback_runs": 5},
}
SECTIONS = ("propagation", "throughput", "heal", "rollback", "peer")
CONFIGS = {
    # What ExternalDNS does out of the box: no event trigger, one sync a minute.
    "upstream defaults": ["--set", "externalDNS.events=false", "--set", "externalDNS.interval=1m"],
    # This chart's defaults (values.yaml): --events and a 1 s interval.
    "chart defaults": [],
}


def install(extra: list[str]) -> None:
    # The chart's values.yaml is passed explicitly: helm upgrade would otherwise carry over the
    # previous configuration's --set values.
    values = ["--reset-values", "-f", str(CHART / "values.yaml")]
    helm(
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "--create-namespace",
        "--wait",
        "--timeout",
        "8m",
        *values,
        *extra,
    )
    kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{RELEASE}-external-dns", "--timeout=180s")


def set_cache_zone(on: bool) -> None:
    """Chart defaults, with the zone's answers cached (on, the default) or kubeadm's cache stanza untouched."""
    install([] if on else ["--set", "coredns.patch.cacheZone=false"])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench")
    p.add_argument("--scale", choices=sorted(SCALES), default="full")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument(
        "--only", action="append", choices=SECTIONS, help="measure only these sections (repeatable); keep the rest"
    )
    return p


def main() -> int:
    args = parser().parse_args()
    if not os.environ.get("KUBECONFIG"):
        default = Path(os.environ.get("K2S_CACHE", Path.home() / ".cache/k2s-dns")) / "kubeconfig-k2s-dns"
        if not default.exists():
            raise SystemExit("no KUBECONFIG: run `make cluster` first (or export KUBECONFIG)")
        os.environ["KUBECONFIG"] = str(default)
    scale = SCALES[args.scale]
    results_file = args.out / "results.json"
    # --only: measure some sections again and keep the others from the last full run.
    previous = json.loads(results_file.read_text()) if args.only and results_file.exists() else {}
    results: dict = {
        **previous,
        "scale": args.scale,
        **scale,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    results.setdefault("configs", {})
    sections = set(args.only or SECTIONS)
    with cluster_dns(os.environ.get("E2E_DNS_NODEPORT", "30053")) as resolver:
        if "propagation" in sections:
            for name, values in CONFIGS.items():
                # A fresh release (and so an empty bundled etcd) per configuration: otherwise the next one
                # would first spend its syncs deleting the previous one's 1000+ records.
                helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
                install(values)
                deployed = kubectl(
                    "-n",
                    NAMESPACE,
                    "get",
                    f"deployment/{RELEASE}-external-dns",
                    "-o",
                    "jsonpath={.spec.template.spec.containers[0].args}",
                )
                print(f"== {name}: {deployed}", flush=True)
                results["configs"][name] = measure.configuration(
                    resolver, scale, footprint_points=name == "chart defaults"
                )
        before: dict = {}
        if "throughput" in sections:
            # The baseline of the same run: CoreDNS as kubeadm left it, no k2s-dns.
            print("== DNS throughput before install: Service name and a pod's search-list misses", flush=True)
            helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
            before = measure.before_install(resolver, scale["dnsperf_seconds"])
        if sections & {"throughput", "heal", "rollback"}:
            install([])  # chart defaults (a no-op when the last configuration was that already)
        if "throughput" in sections:
            print(
                f"== DNS throughput (dnsperf, {measure.DNSPERF_CLIENTS} clients, at most {measure.DNSPERF_MAX_QPS} "
                f"qps, {scale['dnsperf_seconds']} s per row): Service name, search-list misses, etcd name with and "
                "without the cache",
                flush=True,
            )
            results["throughput"] = measure.throughput(resolver, scale["dnsperf_seconds"], set_cache_zone, before)
            if "skipped" not in results["throughput"]:
                results["dnsperf_load"] = measure.dnsperf_load(scale["dnsperf_seconds"])
        if "heal" in sections:
            print(f"== kubeadm's CoreDNS addon phase, {scale['heal_runs']} runs", flush=True)
            results["kubeadm_heal"] = measure.kubeadm_heal(resolver, scale["heal_runs"])
        if "rollback" in sections:
            print(f"== helm rollback across an etcd.prefix change, {scale['rollback_runs']} runs", flush=True)
            results["rollback"] = measure.rollback_follow(
                resolver,
                scale["rollback_runs"],
                lambda extra: helm("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", "--wait", *extra),
                lambda: helm("rollback", RELEASE, "-n", NAMESPACE),
            )
    helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
    if "peer" in sections:
        # After the chart is gone: each side has the cluster to itself.
        print(f"== nearest peer: k8s_gateway {peer.version()}, {scale['samples']} samples, dnsperf", flush=True)
        results["peer"] = peer.run(scale)
    args.out.mkdir(parents=True, exist_ok=True)
    results_file.write_text(json.dumps(results, indent=2) + "\n")
    table = report.markdown(results)
    (args.out / "results.md").write_text(table)
    report.plots(results, args.out)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
