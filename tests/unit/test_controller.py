"""The controller's reconciliation: writes, status, Events and metrics, and how it fails."""

from __future__ import annotations

import argparse
import copy

import pytest

from k2s_dns import controller, converge
from k2s_dns.health import Metrics, Probes
from tests.unit.fake_api import CM, DEPLOY, FakeApi


@pytest.fixture
def reconciler(api: FakeApi) -> controller.Reconciler:
    return controller.Reconciler(api, "k2s-dns/k2s-dns-coredns-desired", Metrics())


def sample(metrics: Metrics, name: str, labels: dict | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


def test_first_reconcile_converges_and_reports(reconciler: controller.Reconciler, api: FakeApi):
    assert reconciler.reconcile() is None
    assert reconciler.status.phase == "Converged"
    assert reconciler.status.corrections == 3
    assert sample(reconciler.metrics, "k2s_dns_corrections_total", {"object": "deployment"}) == 2
    assert sample(reconciler.metrics, "k2s_dns_converged") == 1
    assert [e["reason"] for e in api.events] == ["Corrected"] * 3
    assert api.events[0]["involvedObject"]["name"] == "coredns"


def test_drift_is_healed_and_timed(reconciler: controller.Reconciler, api: FakeApi):
    reconciler.reconcile()
    api.objects[DEPLOY]["spec"]["template"]["spec"].pop("volumes")
    api.objects[DEPLOY]["spec"]["template"]["spec"]["containers"][0].pop("volumeMounts")
    reconciler.reconcile()
    assert reconciler.status.phase == "Converged"
    assert sample(reconciler.metrics, "k2s_dns_heal_seconds_count") == 2


def test_rollout_in_progress_is_progressing_with_a_retry(reconciler: controller.Reconciler, api: FakeApi):
    api.hang_rollouts = True
    assert reconciler.reconcile() == 5.0
    assert reconciler.status.phase == "Progressing"
    assert "waiting for the CoreDNS rollout" in reconciler.status.message


def test_unhandled_corefile_is_reported_once_and_not_retried(reconciler: controller.Reconciler, api: FakeApi):
    api.objects[CM]["data"]["Corefile"] = ".:53 {\n    kubernetes cluster.local {\n"
    before = copy.deepcopy(api.objects)
    assert reconciler.reconcile() is None
    assert reconciler.reconcile() is None
    assert api.objects == before
    assert reconciler.status.phase == "Error" and "refusing to change the Corefile" in reconciler.status.lastError
    warnings = [e for e in api.events if e["type"] == "Warning"]
    assert len(warnings) == 1 and warnings[0]["reason"] == "CorefileRejected"
    assert sample(reconciler.metrics, "k2s_dns_reconcile_errors_total", {"kind": "corefile"}) == 2


def test_api_errors_are_retried_with_a_delay(reconciler: controller.Reconciler, api: FakeApi):
    del api.objects[DEPLOY]
    assert reconciler.reconcile() == 5.0
    assert reconciler.status.phase == "Error"


def test_watch_targets_follow_the_desired_state(api: FakeApi, reconciler: controller.Reconciler):
    args = argparse.Namespace(desired="k2s-dns/k2s-dns-coredns-desired")
    assert controller.watch_targets(args, None) == {
        controller.WatchTarget("configmap", "k2s-dns", "k2s-dns-coredns-desired")
    }
    reconciler.reconcile()
    kinds = sorted((t.kind, t.name) for t in controller.watch_targets(args, reconciler.desired))
    assert kinds == [
        ("configmap", "coredns"),
        ("configmap", "k2s-dns-coredns-desired"),
        ("configmap", "node-local-dns"),
        ("deployment", "coredns"),
        ("secret", "etcd-ca"),
        ("secret", "etcd-client-for-core-dns"),
    ]


def test_probes_report_staleness_and_readiness():
    ready = {"value": False}
    probes = Probes(lambda: ready["value"], stale_after=60)
    assert probes.alive() and not probes.ready()
    ready["value"] = True
    assert probes.ready()
    probes.stale_after = -1
    assert not probes.alive() and not probes.ready()


def leased_controller(api: FakeApi, identity: str) -> controller.Controller:
    """A controller of release k2s-dns/k2s-dns electing itself on its Lease as `identity`."""
    args = controller.parser().parse_args(
        [
            "--desired=k2s-dns/k2s-dns-coredns-desired",
            "--status=k2s-dns/k2s-dns-controller-status",
            "--lease=k2s-dns/k2s-dns-controller",
            f"--identity={identity}",
        ]
    )
    return controller.Controller(args, api, Metrics())


def test_leader_status_is_written_only_when_it_changes(api: FakeApi):
    from k2s_dns import kube

    status_path = kube.configmap_path("k2s-dns", "k2s-dns-controller-status")
    lease_path = kube.lease_path("k2s-dns", "k2s-dns-controller")
    api.objects[status_path] = {"metadata": {"name": "s", "resourceVersion": "1"}}
    api.objects[lease_path] = {"metadata": {"name": "l", "resourceVersion": "1"}, "spec": {}}
    ctl = leased_controller(api, "pod-a")
    assert not ctl.ready(), "ready before the first election attempt: helm --wait would return too early"
    ctl._renew()
    assert ctl.leader and not ctl.ready()
    ctl.reconciler.reconcile()
    ctl._write_status()
    ctl._write_status()
    assert api.writes.count(status_path) == 1
    data = api.objects[status_path]["data"]
    assert data["phase"] == "Converged" and data["leader"] == "pod-a"
    assert ctl.ready()
    assert converge.CONVERGED == "converged"


def test_standby_is_ready_only_once_it_has_seen_another_leader(api: FakeApi):
    import datetime as dt

    from k2s_dns import kube

    lease_path = kube.lease_path("k2s-dns", "k2s-dns-controller")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    api.objects[kube.configmap_path("k2s-dns", "k2s-dns-controller-status")] = {"metadata": {"name": "s"}}
    api.objects[lease_path] = {
        "metadata": {"name": "l", "resourceVersion": "1"},
        "spec": {"holderIdentity": "pod-a", "renewTime": now, "leaseDurationSeconds": 15},
    }
    ctl = leased_controller(api, "pod-b")
    assert not ctl.ready()
    ctl._renew()
    assert not ctl.leader and ctl.ready(), "a standby behind a live leader can take over: ready"
    del api.objects[lease_path]
    ctl._renew()
    assert not ctl.leader and not ctl.ready(), "the Lease could not be read: not known to be a standby"


# --- publication policy report -------------------------------------------------------------------------------

INGRESSES = "/apis/networking.k8s.io/v1/ingresses"
NAMESPACES = "/api/v1/namespaces"


def ingress(namespace: str, name: str, *hosts: str) -> dict:
    return {"metadata": {"namespace": namespace, "name": name}, "spec": {"rules": [{"host": h} for h in hosts]}}


def with_policy(api: FakeApi, *ingresses: dict) -> None:
    api.set_desired(publicationPolicy=True, trustedNamespaces=["k2s-dns"], sources=["ingress"])
    api.objects[INGRESSES] = {"items": list(ingresses)}
    api.objects[NAMESPACES] = {
        "items": [{"metadata": {"name": n, "labels": {}}} for n in ("tenant", "k2s-dns")]
        + [{"metadata": {"name": "addons", "labels": {"k2s-dns.io/trusted-publisher": "true"}}}]
    }


def test_objects_that_break_the_publication_policy_are_reported(reconciler: controller.Reconciler, api: FakeApi):
    with_policy(
        api,
        ingress("tenant", "evil", "github.com.cluster.local", "ok.tenant.cluster.local"),
        ingress("tenant", "fine", "app.tenant.cluster.local"),
        ingress("addons", "k2s", "k2s.cluster.local"),
    )
    api.set_desired(trustedNamespaceLabel="k2s-dns.io/trusted-publisher")
    # Converged, it scans again a minute later rather than waiting for the next event.
    assert reconciler.reconcile() == controller.SCAN_SECONDS
    assert reconciler.status.phase == "Converged"
    assert reconciler.status.publicationViolations == [
        "Ingress tenant/evil: github.com.cluster.local (inside the cluster domain cluster.local, namespace tenant "
        "may publish only names under tenant.cluster.local (e.g. app.tenant.cluster.local); github.com.cluster.local "
        "is not one)"
    ]
    assert sample(reconciler.metrics, "k2s_dns_publication_violations") == 1
    refused = [e for e in api.events if e["reason"] == "PublicationRefused"]
    assert len(refused) == 1 and refused[0]["type"] == "Warning"
    assert refused[0]["involvedObject"] == {
        "kind": "Ingress",
        "namespace": "tenant",
        "name": "evil",
        "apiVersion": "networking.k8s.io/v1",
    }
    # Once per object and host, not every minute; gone when the object is fixed.
    reconciler.reconcile()
    assert len([e for e in api.events if e["reason"] == "PublicationRefused"]) == 1
    api.objects[INGRESSES]["items"].pop(0)
    reconciler.reconcile()
    assert reconciler.status.publicationViolations == []
    assert sample(reconciler.metrics, "k2s_dns_publication_violations") == 0


def test_a_failed_list_never_stops_convergence(reconciler: controller.Reconciler, api: FakeApi):
    with_policy(api)
    del api.objects[INGRESSES]
    assert reconciler.reconcile() == controller.SCAN_SECONDS
    assert reconciler.status.phase == "Converged"


def test_without_the_policy_nothing_is_listed(reconciler: controller.Reconciler, api: FakeApi):
    assert reconciler.reconcile() is None
    assert INGRESSES not in api.writes and reconciler.status.publicationViolations == []


def test_the_official_client_lists_each_collection_the_scan_reads(monkeypatch):
    """KubeObjects.list: the typed cluster-wide list calls, their JSON as a dict; unknown paths refused."""
    from types import SimpleNamespace

    from kubernetes import client as k8s

    from k2s_dns.kubeclient import KubeObjects

    called = []

    def fake(name):
        def method(self, **kwargs):
            called.append((name, kwargs))
            return SimpleNamespace(data=b'{"items": [{"metadata": {"name": "x"}}]}')

        return method

    monkeypatch.setattr(k8s.NetworkingV1Api, "list_ingress_for_all_namespaces", fake("ingresses"))
    monkeypatch.setattr(k8s.CoreV1Api, "list_namespace", fake("namespaces"))
    objects = KubeObjects(k8s.ApiClient())
    assert objects.list(controller.SOURCE_LISTS["ingress"][1])["items"][0]["metadata"]["name"] == "x"
    objects.list("/api/v1/namespaces")
    assert called == [("ingresses", {"_preload_content": False}), ("namespaces", {"_preload_content": False})]
    with pytest.raises(ValueError, match="no route"):
        objects.list("/apis/gateway.networking.k8s.io/v1/httproutes")
