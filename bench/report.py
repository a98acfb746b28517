"""results.json -> the markdown table README shows, and PNG plots."""

from __future__ import annotations

from pathlib import Path


def fmt(value) -> str:
    return "-" if value is None else f"{value}"


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
    heal = results.get("kubeadm_heal")
    if heal:
        lines += [
            "",
            "| kubeadm's CoreDNS addon phase (Deployment replaced) | n | p50 | p95 | max |",
            "|---|---|---|---|---|",
        ]
        for key, label in (
            ("mounts", "-> controller put the mounts back"),
            ("healed", "-> rollout done, etcd name answers"),
        ):
            row = heal[key]
            lines.append(
                f"| {label} | {row['n']} | {fmt(row.get('p50'))} | {fmt(row.get('p95'))} | {fmt(row.get('max'))} |"
            )
    lines += ["", "| CoreDNS under dnsperf | qps | avg latency ms | max latency ms | lost |", "|---|---|---|---|---|"]
    for label, row in results.get("throughput", {}).items():
        if isinstance(row, dict):
            qps = round(row["qps"]) if row.get("qps") else None
            lines.append(
                f"| {label} | {fmt(qps)} | {fmt(round(row.get('avg_latency_ms') or 0, 3))} "
                f"| {fmt(round(row.get('max_latency_ms') or 0, 3))} | {fmt(row.get('lost'))} |"
            )
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
