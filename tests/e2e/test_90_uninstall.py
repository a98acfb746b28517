"""Uninstall restores CoreDNS exactly, leaves no k2s-dns object, and a second install works."""

from __future__ import annotations

import json
import subprocess
import time

from tests.conftest import CHART

from .conftest import coredns_state, install
from .helpers import (
    NAMESPACE,
    RELEASE,
    create_namespace,
    current_corefile,
    diagnostics,
    helm,
    kubectl,
    kubectl_json,
    resolves_to,
    set_corefile,
    wait_for,
)


def k2s_dns_objects() -> list[str]:
    kinds = "all,configmaps,secrets,serviceaccounts,roles,rolebindings,networkpolicies,poddisruptionbudgets,ingresses"
    found = kubectl("get", kinds, "-A", "-l", "app.kubernetes.io/part-of=k2s-dns", "-o", "name")
    cluster = kubectl(
        "get", "clusterroles,clusterrolebindings", "-l", "app.kubernetes.io/part-of=k2s-dns", "-o", "name"
    )
    secrets = kubectl("-n", "kube-system", "get", "secrets", "-o", "name")
    leftovers = [line for line in (found + cluster).splitlines() if line]
    leftovers += [s for s in secrets.splitlines() if s in ("secret/etcd-client-for-core-dns", "secret/etcd-ca")]
    return leftovers


def controller_converged_after_edit(edit: str) -> bool:
    """The controller has taken the edit into the original it restores (its annotation holds it)."""
    cm = kubectl_json("-n", "kube-system", "get", "configmap", "coredns")
    return edit in (cm["metadata"].get("annotations") or {}).get("k2s-dns.io/original-corefile", "")


def test_uninstall_restores_coredns_and_reinstall_works(release, coredns_before, resolver, service_probe, kube_cluster):
    # An administrator's edit made while k2s-dns is installed: uninstall removes only what k2s-dns added.
    edit = "    hosts {\n        192.0.2.78 admin-kept.example\n        fallthrough\n    }\n"
    set_corefile(current_corefile().replace("    loop\n", edit + "    loop\n", 1))
    wait_for(lambda: controller_converged_after_edit(edit), 60, "the controller adopted the edit")
    helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    after = coredns_state()
    assert after["Corefile"] == coredns_before["Corefile"].replace("    loop\n", edit + "    loop\n", 1)
    set_corefile(after["Corefile"].replace(edit, ""))
    after = coredns_state()
    # The same check through pytest-helm-charts' cluster fixture (pykube), independent of our helpers.
    configmap = kube_cluster.kubectl("get configmap coredns", namespace="kube-system")
    assert configmap["data"]["Corefile"] == coredns_before["Corefile"]
    assert after["Corefile"] == coredns_before["Corefile"]
    assert after["cm_annotations"] == coredns_before["cm_annotations"]
    assert json.dumps(after["spec"], sort_keys=True) == json.dumps(coredns_before["spec"], sort_keys=True)
    # Pods of deleted controllers are garbage-collected shortly after `helm uninstall --wait` returns.
    wait_for(lambda: k2s_dns_objects() == [], 120, "no k2s-dns object left", lambda: "\n".join(k2s_dns_objects()))
    assert service_probe.failures_since(0) == [], "Service names failed at some point of the session"

    install()
    create_namespace("e2e-reinstall")
    try:
        ingress = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "again",
                "namespace": "e2e-reinstall",
                "annotations": {"external-dns.alpha.kubernetes.io/target": "192.0.2.99"},
            },
            "spec": {"rules": [{"host": "again.cluster.local"}]},
        }
        kubectl("apply", "-f", "-", stdin=json.dumps(ingress))
        wait_for(
            resolves_to(resolver, "again.cluster.local", {"192.0.2.99"}), 60, "record after reinstall", diagnostics
        )
    finally:
        kubectl("delete", "namespace", "e2e-reinstall", "--wait=true")


def test_uninstall_of_a_release_whose_image_never_arrived(release, coredns_before, service_probe):
    """The chart's image cannot be pulled (a registry that refuses, on the node's loopback): the controller
    never runs, so CoreDNS is never touched, and the pre-delete Job cannot run either. Helm waits for that
    Job until --timeout and leaves the release `uninstalling`; doctor names the release hop, sees that CoreDNS
    carries nothing of the release and gives `--no-hooks` as the fix, which then leaves nothing behind."""
    from .test_80_doctor import doctor, failed_hop

    helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    start = time.time()
    bad = ["--set", "coredns.patch.image.registry=127.0.0.1:9", "--set", "coredns.patch.image.tag=does-not-exist"]
    helm("install", RELEASE, str(CHART), "-n", NAMESPACE, *bad)
    try:
        stuck = helm("uninstall", RELEASE, "-n", NAMESPACE, "--timeout", "20s", check=False)
        assert stuck.returncode != 0, "the pre-delete Job ran although its image does not exist"
        code, report, _ = doctor(None)
        failed = failed_hop(report)
        assert code == 1 and report["failed"] == "release", report
        assert "nothing to restore" in failed["detail"], failed
        assert failed["fix"].startswith(f"helm uninstall {RELEASE} -n {NAMESPACE} --no-hooks; kubectl delete "), failed
        # The fix, as a user pastes it.
        subprocess.run(["bash", "-ec", failed["fix"]], check=True, capture_output=True, text=True)
        after = coredns_state()
        assert after["Corefile"] == coredns_before["Corefile"]
        assert json.dumps(after["spec"], sort_keys=True) == json.dumps(coredns_before["spec"], sort_keys=True)
        wait_for(lambda: k2s_dns_objects() == [], 120, "no k2s-dns object left", lambda: "\n".join(k2s_dns_objects()))
    finally:
        if helm("status", RELEASE, "-n", NAMESPACE, check=False).returncode == 0:
            helm("uninstall", RELEASE, "-n", NAMESPACE, "--no-hooks", "--wait")
        kubectl(
            "delete",
            "jobs,serviceaccounts,roles,rolebindings",
            "-A",
            "-l",
            f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/part-of=k2s-dns",
            "--ignore-not-found",
        )
        install()
    assert service_probe.failures_since(start) == []
