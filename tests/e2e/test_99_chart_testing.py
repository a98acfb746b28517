"""chart-testing itself (`ct install`, the tool chart repositories run in CI): for every ci/*-values.yaml it
installs the chart into a namespace of its own, runs `helm test`, and uninstalls. CoreDNS is as it was
afterwards and Service names resolve throughout."""

from __future__ import annotations

import subprocess
import time

from tests.conftest import REPO

from .conftest import coredns_state, installed
from .helpers import NAMESPACE, RELEASE, helm


def test_ct_install_every_ci_values_file(coredns_before, service_probe, figure):
    values = sorted((REPO / "charts" / "k2s-dns" / "ci").glob("*-values.yaml"))
    assert values, "charts/k2s-dns/ci has no *-values.yaml for ct install"
    if installed():
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    start = time.time()
    began = time.monotonic()
    result = subprocess.run(
        ["ct", "install", "--config", "ct.yaml", "--charts", "charts/k2s-dns"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.monotonic() - began
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"ct install failed:\n{output[-6000:]}"
    for path in values:
        assert path.name in output, f"ct install did not install with {path.name}:\n{output[-3000:]}"
    figure(f"ct install: {len(values)} values files ({', '.join(p.name for p in values)}) in {took:.0f}s")
    assert coredns_state()["Corefile"] == coredns_before["Corefile"], "ct install left CoreDNS changed"
    assert service_probe.failures_since(start) == [], "Service names failed during ct install"
