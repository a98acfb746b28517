"""Helm 4 (bin/helm4, built from helm.sh/helm/v4 at HELM4_VERSION) runs the whole release lifecycle the rest
of the suite runs with Helm 3: install, `helm test`, upgrade, rollback, uninstall. Names resolve after each
step and Service names throughout."""

from __future__ import annotations

import json
import subprocess
import time

from tests.conftest import CHART

from .conftest import coredns_state, installed
from .helpers import NAMESPACE, RELEASE, converged, diagnostics, helm, kubectl_json, resolves_to, wait_for


def helm4(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(["helm4", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"helm4 {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def desired() -> dict:
    cm = kubectl_json("-n", NAMESPACE, "get", "configmap", f"{RELEASE}-coredns-desired")
    return json.loads(cm["data"]["desired.json"])


def revision4() -> int:
    return int(json.loads(helm4("status", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)["version"])


def test_helm4_install_test_upgrade_rollback_uninstall(coredns_before, resolver, ingresses, service_probe, figure):
    version = helm4("version", "--short").stdout.strip()
    assert version.startswith("v4."), f"bin/helm4 is not Helm 4: {version}"
    if installed():
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    start = time.time()
    host = f"helm4-{ingresses.namespace.rsplit('-', 1)[-1]}.cluster.local"
    published = resolves_to(resolver, host, {"192.0.2.98"})
    timings = {}
    try:
        began = time.monotonic()
        helm4("install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace", "--wait", "--timeout", "8m")
        timings["install"] = time.monotonic() - began
        ingresses.apply("helm4", [host], ["192.0.2.98"])
        wait_for(published, 90, "record after a Helm 4 install", diagnostics)

        began = time.monotonic()
        tested = helm4("test", RELEASE, "-n", NAMESPACE, "--timeout", "4m")
        timings["test"] = time.monotonic() - began
        assert "Phase:          Succeeded" in tested.stdout or "Succeeded" in tested.stdout, tested.stdout

        assert desired()["cacheZone"] is True
        began = time.monotonic()
        helm4(
            "upgrade",
            RELEASE,
            str(CHART),
            "-n",
            NAMESPACE,
            "--reuse-values",
            "--set",
            "coredns.patch.cacheZone=false",
            "--wait",
            "--timeout",
            "8m",
        )
        timings["upgrade"] = time.monotonic() - began
        assert revision4() == 2 and desired()["cacheZone"] is False
        wait_for(converged, 120, "controller converged after the Helm 4 upgrade", diagnostics)
        wait_for(published, 90, "record after the Helm 4 upgrade", diagnostics)

        began = time.monotonic()
        helm4("rollback", RELEASE, "1", "-n", NAMESPACE, "--wait", "--timeout", "8m")
        timings["rollback"] = time.monotonic() - began
        assert revision4() == 3 and desired()["cacheZone"] is True
        wait_for(converged, 120, "controller converged after the Helm 4 rollback", diagnostics)
        wait_for(published, 90, "record after the Helm 4 rollback", diagnostics)

        began = time.monotonic()
        helm4("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "5m")
        timings["uninstall"] = time.monotonic() - began
        assert not installed()
        assert coredns_state()["Corefile"] == coredns_before["Corefile"], "Helm 4 uninstall left CoreDNS changed"
    finally:
        if installed():
            helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    figure(f"{version}: " + ", ".join(f"{step} {seconds:.0f}s" for step, seconds in timings.items()))
    assert service_probe.failures_since(start) == [], "Service names failed during the Helm 4 lifecycle"
