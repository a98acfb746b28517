"""results.json -> the markdown table README shows, and PNG plots."""

from __future__ import annotations

from pathlib import Path

# Rows of the dnsperf table (measure.throughput writes them, the peer table reads the cached one).
ROW_SERVICE = "Service name"
ROW_ETCD_CACHED = "etcd name, cache on (chart default)"
ROW_ETCD_UNCACHED = "etcd name, cache off (coredns.patch.cacheZone=false)"
# A pod's search-list misses for external names (`www<i>.example.com.<ns>.svc.<domain>`, `...svc.<domain>`,
# `...<domain>`), before the chart is installed and with it, each next to a Service name of the same phase.
ROW_SERVICE_BEFORE = "Service name, before install"
ROW_MISSES_BEFORE = "search-list misses, before install"
ROW_MISSES = "search-list misses (chart installed)"
LEGACY_ETCD_ROW = "etcd name"  # results.json before the cache rows


def fmt(value) -> str:
    return "-" if value is None else f"{value}"


def _p50_p95(row: dict | None) -> str:
    if not row or not row.get("n"):
        return "-"
    return f"{fmt(row.get('p50'))} / {fmt(row.get('p95'))}"


def _qps(row: dict | None) -> str:
    return fmt(round(row["qps"])) if row and row.get("qps") else "-"


def _latency(row: dict | None) -> str:
    return fmt(round(row.get("avg_latency_ms") or 0, 3)) if row and row.get("qps") else "-"


def _load(load: dict | None) -> str:
    if not load:
        return "unknown load"
    return f"{load['clients']} clients, at most {load['max_qps']} qps, {load['seconds']} s"


def peer_table(results: dict) -> list[str]:
    """Chart (defaults) next to the nearest peer, measured the same way in the same run."""
    other = results.get("peer")
    if not other:
        return []
    chart = results.get("configs", {}).get("chart defaults", {})
    rows = results.get("throughput", {})
    chart_perf = rows.get(ROW_ETCD_CACHED) or rows.get(LEGACY_ETCD_ROW)
    chart_perf = chart_perf if isinstance(chart_perf, dict) else None
    peer_perf = other.get("throughput")
    peer_perf = peer_perf if isinstance(peer_perf, dict) and "skipped" not in peer_perf else None
    peer_name = f"{other.get('name', 'k8s_gateway')} {other.get('version', '')}".strip()
    lines = [
        "",
        f"| chart vs nearest peer, same method | chart defaults (ExternalDNS -> etcd -> CoreDNS) | {peer_name} |",
        "|---|---|---|",
    ]
    for key, label in (
        ("create_fresh", "create -> resolvable, p50 / p95 s"),
        ("update", "address change -> new answer, p50 / p95 s"),
        ("delete", "delete -> NXDOMAIN, p50 / p95 s"),
    ):
        lines.append(f"| {label} | {_p50_p95(chart.get(key))} | {_p50_p95(other.get(key))} |")
    lines.append(f"| dnsperf, one Ingress name: qps | {_qps(chart_perf)} | {_qps(peer_perf)} |")
    lines.append(f"| dnsperf, one Ingress name: avg latency ms | {_latency(chart_perf)} | {_latency(peer_perf)} |")
    chart_load, peer_load = results.get("dnsperf_load"), other.get("dnsperf_load")
    load = _load(peer_load) if chart_load == peer_load else f"chart {_load(chart_load)}, peer {_load(peer_load)}"
    lines += [
        "",
        f"dnsperf load: {load}. The peer is asked directly ({other.get('path', 'NodePort')}, "
        f"{other.get('replicas', 1)} replica), the chart through the cluster's CoreDNS; in a cluster the peer "
        "also needs a forward from CoreDNS, one more hop.",
    ]
    return lines


def _timing_table(measured: dict | None, title: str, rows: tuple[tuple[str, str], ...]) -> list[str]:
    """A table of percentiles (n, p50, p95, max) for the measured keys, or nothing when not measured."""
    if not measured:
        return []
    lines = ["", f"| {title} | n | p50 | p95 | max |", "|---|---|---|---|---|"]
    for key, label in rows:
        row = measured[key]
        lines.append(
            f"| {label} | {row['n']} | {fmt(row.get('p50'))} | {fmt(row.get('p95'))} | {fmt(row.get('max'))} |"
        )
    return lines


def markdown(results: dict) -> str:
    lines = [
        f"Scale `{results['scale']}`: {results['samples']} latency samples per row, "
        f"{results['bulk']} Ingresses in the bulk run; seconds unless noted.",
        "",
        "| configuration | measurement | n | p50 | p95 | max |",
        "|---|---|---|---|---|---|",
    ]
    for name, config in results["configs"].items():
        for key, label in (
            ("create_fresh", "create -> resolvable (never queried)"),
            ("create_after_nxdomain", "create -> resolvable (queried, NXDOMAIN, before)"),
            ("update", "address change -> new answer"),
            ("delete", "delete -> NXDOMAIN"),
        ):
            row = config[key]
            lines.append(
                f"| {name} | {label} | {row['n']} | {fmt(row.get('p50'))} | {fmt(row.get('p95'))} "
                f"| {fmt(row.get('max'))} |"
            )
        bulk = config["bulk"]
        lines.append(
            f"| {name} | bulk: {bulk['count']} created in {bulk['create_seconds']} s -> all resolvable "
            f"| {bulk['resolved']} | | | {fmt(bulk['all_resolved_seconds'])} |"
        )
    lines += _timing_table(
        results.get("kubeadm_heal"),
        "kubeadm's CoreDNS addon phase (Deployment replaced)",
        (("mounts", "-> controller put the mounts back"), ("healed", "-> rollout done, etcd name answers")),
    )
    lines += _timing_table(
        results.get("rollback"),
        "helm rollback across an etcd.prefix change",
        (
            ("corefile", "-> controller wrote the old prefix into the Corefile"),
            ("answered", "-> rollout done, etcd name answers"),
        ),
    )
    header = "CoreDNS under dnsperf"
    if results.get("dnsperf_load"):
        header += f" ({_load(results['dnsperf_load'])})"
    lines += [
        "",
        f"| {header} | qps | % of the Service name's qps, same phase | avg latency ms | max latency ms | lost |",
        "|---|---|---|---|---|---|",
    ]
    for label, row in results.get("throughput", {}).items():
        if isinstance(row, dict):
            qps = round(row["qps"]) if row.get("qps") else None
            lines.append(
                f"| {label} | {fmt(qps)} | {fmt(row.get('vs_service_pct'))} "
                f"| {fmt(round(row.get('avg_latency_ms') or 0, 3))} "
                f"| {fmt(round(row.get('max_latency_ms') or 0, 3))} | {fmt(row.get('lost'))} |"
            )
    lines += peer_table(results)
    chart = results["configs"].get("chart defaults", {})
    if chart.get("footprint"):
        lines += [
            "",
            "| Ingresses | etcd MiB / cores | ExternalDNS MiB / cores | CoreDNS (all pods) MiB / cores |",
            "|---|---|---|---|",
        ]
        for count, usage in chart["footprint"].items():
            cells = [
                f"{round(usage.get(p, {}).get('memory_mib', 0), 1)} / {round(usage.get(p, {}).get('cpu_cores', 0), 3)}"
                for p in ("etcd", "external-dns", "coredns")
            ]
            lines.append(f"| {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plots(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, config in results["configs"].items():
        for key, style in (("create_fresh", "-"), ("create_after_nxdomain", "--")):
            samples = config[key]["samples"]
            if samples:
                ys = [(i + 1) / len(samples) for i in range(len(samples))]
                ax.step(samples, ys, style, where="post", label=f"{name}, {key.replace('_', ' ')}")
    other = results.get("peer") or {}
    samples = other.get("create_fresh", {}).get("samples")
    if samples:
        ys = [(i + 1) / len(samples) for i in range(len(samples))]
        ax.step(samples, ys, ":", where="post", label=f"peer ({other.get('name', 'k8s_gateway')}), create fresh")
    ax.set_xscale("log")
    ax.set_xlabel("seconds from Ingress address to CoreDNS answer")
    ax.set_ylabel("fraction of Ingresses")
    ax.set_title("create -> resolvable latency (CDF)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "latency-cdf.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, config in results["configs"].items():
        curve = config["bulk"]["curve"]
        if curve:
            ax.plot(curve, range(1, len(curve) + 1), label=name)
    ax.set_xlabel("seconds since the first of the bulk Ingresses was created")
    ax.set_ylabel("Ingresses resolvable")
    ax.set_title(f"bulk: {results['bulk']} Ingresses at once")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "bulk.png", dpi=110)
    plt.close(fig)
