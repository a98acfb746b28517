"""Tests nobody here wrote: Kubernetes' own DNS conformance specs (the 8 `[sig-network] DNS ...
[Conformance]` specs of e2e.test at the cluster's version, tests/conformance/run.sh) with the chart installed
with its defaults, and again with the chart's etcd scaled to 0. Each spec's result is a measured figure."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import REPO

from .helpers import diagnostics, etcd_down, progress, resolves_to, wait_for

SPECS = 8
RUN = REPO / "tests/conformance/run.sh"


def conformance(figure, label: str) -> None:
    progress(f"Kubernetes DNS conformance ({label}): about a minute")
    result = subprocess.run(["bash", str(RUN)], capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if re.match(r"^(PASS|FAIL) ", line)]
    for line in lines:
        figure(f"conformance, {label}: {line}")
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert len([line for line in lines if line.startswith("PASS ")]) == SPECS, result.stdout


def test_dns_conformance_with_the_chart_installed(release, figure):
    conformance(figure, "chart defaults")


def test_dns_conformance_with_the_charts_etcd_down(ingresses, resolver, service_probe, figure):
    host = f"conformance-{ingresses.namespace.rsplit('-', 1)[-1]}.cluster.local"
    ingresses.apply("conformance", [host], ["192.0.2.57"])
    wait_for(resolves_to(resolver, host, {"192.0.2.57"}), 240, "published name before the outage", diagnostics)
    with etcd_down(resolver, host, "192.0.2.57") as start:
        conformance(figure, "chart's etcd scaled to 0")
        assert service_probe.failures_since(start) == []
