"""helm upgrade is idempotent; helm test passes."""

from __future__ import annotations

import time

from .conftest import install
from .helpers import NAMESPACE, RELEASE, current_corefile, diagnostics, helm, resolves_to, wait_for


def test_upgrade_keeps_exactly_one_etcd_block_and_the_records(ingresses, resolver, service_probe):
    ingresses.apply("kept", ["kept.cluster.local"], ["192.0.2.80"])
    wait_for(resolves_to(resolver, "kept.cluster.local", {"192.0.2.80"}), 60, "record before upgrade", diagnostics)
    start = time.time()
    install("--reuse-values", "--set", "externalDNS.logLevel=debug")
    install("--reuse-values", "--set", "externalDNS.logLevel=info")
    text = current_corefile()
    assert text.count("# BEGIN k2s-dns") == 1 and text.count("etcd cluster.local {") == 1, text
    assert text.count("cluster.local:53 {") == 1, text
    wait_for(resolves_to(resolver, "kept.cluster.local", {"192.0.2.80"}), 60, "record after upgrade", diagnostics)
    assert service_probe.failures_since(start) == [], "Service names failed during upgrade"


def test_helm_test_passes(release):
    result = helm("test", RELEASE, "-n", NAMESPACE, "--timeout", "4m", check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{diagnostics()}"
