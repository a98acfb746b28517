"""A Corefile laid out as in real clusters: the zone has a server block of its own (CoreDNS sends the
zone's queries there, not to `.:53`) and a comment follows the kubernetes plugin's block. k2s-dns's block
goes before it, names resolve, and uninstall gives the Corefile back byte for byte."""

from __future__ import annotations

import json
import time

from k2s_dns import corefile

from .conftest import install, installed
from .helpers import (
    NAMESPACE,
    RELEASE,
    create_namespace,
    current_corefile,
    diagnostics,
    helm,
    kubectl,
    resolves_to,
    restart_coredns_pods,
    set_corefile,
    wait_for,
)

LAYOUT = """\
cluster.local:53 {
    errors
    kubernetes cluster.local {
        pods insecure
    } # cluster Services: this block, not .:53, answers the zone
    cache 30 {
        disable success cluster.local
        disable denial cluster.local
    }
    loadbalance
}
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    cache 30
    loop
    reload
    loadbalance
}
"""


def set_corefile_and_restart(text: str) -> None:
    set_corefile(text)
    restart_coredns_pods()


def test_zone_specific_server_block_with_a_trailing_comment(release, resolver, service_probe, kubernetes_ip):
    start = time.time()
    helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    original = current_corefile()
    set_corefile_and_restart(LAYOUT)
    namespace = "e2e-layout"
    try:
        wait_for(lambda: kubernetes_ip in resolver.query("kubernetes.default.svc.cluster.local").records, 60, "layout")
        install()
        text = current_corefile()
        managed = corefile.managed_block(text)
        assert managed is not None and managed.label == "cluster.local:53", text
        assert "etcd cluster.local {" in text[managed.open_brace : managed.close_brace]
        # The layout's own block for the zone comes after it (CoreDNS accepts a view block next to one without
        # only in that order) and is as it was.
        assert text.index(corefile.END_MARKER) < text.index("cluster.local:53 {\n    errors")
        assert corefile.unpatch(text) == LAYOUT
        create_namespace(namespace)
        ingress = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "layout",
                "namespace": namespace,
                "annotations": {"external-dns.alpha.kubernetes.io/target": "192.0.2.93"},
            },
            "spec": {"rules": [{"host": "layout.cluster.local"}]},
        }
        kubectl("apply", "-f", "-", stdin=json.dumps(ingress))
        wait_for(
            resolves_to(resolver, "layout.cluster.local", {"192.0.2.93"}), 90, "name in the zone block", diagnostics
        )
        kubectl("delete", "namespace", namespace, "--wait=true")
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
        assert current_corefile() == LAYOUT
    finally:
        kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
        if installed():
            helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
        set_corefile_and_restart(original)
    install()
    assert service_probe.failures_since(start) == [], "Service names failed while the Corefile layout changed"
