"""`k2s-dns doctor`: every hop's FAIL path names the problem and the fix, on fake API data (doctor_fakes.py)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import socket
import threading
import time
import urllib.parse
from typing import ClassVar

import dns.message
import dns.rcode
import dns.rrset
import pytest

from k2s_dns import cli
from k2s_dns.doctor import checks, cluster, dnsquery, report
from k2s_dns.doctor import run as doctor_run
from k2s_dns.doctor.checks import FAIL, OK, SKIP, WARN

from .doctor_fakes import (
    ADDRESS,
    DNS_SERVICE_IP,
    HOST,
    NAMES,
    FakeKube,
    coredns_deployment,
    corefile_key,
    external_dns_log,
    healthy,
    ingress,
    patched_corefile,
    release_labels,
    run,
)


def failure(state: dict, host: str | None = HOST, **kwargs) -> checks.Result:
    """The one FAIL of a run; every later hop is SKIP, every earlier one passed."""
    result = run(state, host, **kwargs)
    statuses = [r.status for r in result.results]
    assert statuses.count(FAIL) == 1, report.table(result)
    at = statuses.index(FAIL)
    assert all(s in (OK, WARN) for s in statuses[:at]), report.table(result)
    assert all(s == SKIP for s in statuses[at + 1 :]), report.table(result)
    assert result.failed == result.results[at].hop and not result.ok
    return result.results[at]


# ---------------------------------------------------------------------------------------------- healthy


def test_healthy_host_passes_every_hop():
    result = run(healthy())
    assert [r.hop for r in result.results] == list(checks.HOPS)
    assert [r.status for r in result.results] == [OK, OK, OK, OK, OK, OK, WARN], report.table(result)
    assert result.ok and result.failed is None
    assert "web.cluster.local -> 192.0.2.10" in result.results[3].detail
    assert "3 servers answer" in result.results[5].detail


def test_installation_without_host_checks_release_external_dns_etcd_coredns():
    result = run(healthy(), None)
    assert [r.hop for r in result.results] == ["release", "external-dns", "etcd", "coredns"]
    assert all(r.status == OK for r in result.results), report.table(result)
    assert "1 record for 1 name under /skydns/local/cluster" in result.results[2].detail


def test_etcd_is_read_as_root_over_tls_with_the_secret_password():
    kube = FakeKube(healthy())
    doctor_run.run(kube, NAMES, HOST, query=lambda *a, **k: {"rcode": "", "records": [], "error": "x"})
    (command,) = kube.execs
    assert command[:2] == ["etcdctl", "--endpoints=https://127.0.0.1:2379"]
    assert "--cacert=/etc/etcd/tls/ca.crt" in command and "--user=root:s3cret" in command
    assert command[-5:] == ["get", "--prefix", "/skydns/local/cluster", "-w", "json"]


def test_doctor_run_against_the_fakes_is_fast():
    start = time.perf_counter()
    for _ in range(20):
        assert run(healthy()).ok
    assert (time.perf_counter() - start) / 20 < 0.5


# ---------------------------------------------------------------------------------------------- hop 1: release


def test_release_not_installed():
    state = healthy()
    del state["configmaps"][("k2s-dns", "k2s-dns-coredns-desired")]
    r = failure(state)
    assert r.hop == "release"
    assert (
        r.detail
        == "release k2s-dns not found in namespace k2s-dns: no ConfigMap k2s-dns-coredns-desired (helm says: deployed)"
    )
    assert r.fix.startswith("helm install k2s-dns charts/k2s-dns -n k2s-dns --create-namespace")


def test_release_with_unreadable_desired_state():
    state = healthy()
    state["configmaps"][("k2s-dns", "k2s-dns-coredns-desired")]["data"]["desired.json"] = "{"
    r = failure(state)
    assert r.hop == "release" and "desired state is unreadable" in r.detail and "not JSON" in r.detail
    assert r.fix == "helm upgrade k2s-dns charts/k2s-dns -n k2s-dns --reuse-values"


def test_release_stuck_uninstalling():
    state = healthy()
    from .doctor_fakes import helm_secret

    state["helm"].append(helm_secret("uninstalling", 2))
    r = failure(state)
    assert r.hop == "release" and r.detail.startswith("release k2s-dns is stuck uninstalling")
    assert "kubectl -n k2s-dns get jobs,pods -l app.kubernetes.io/instance=k2s-dns" in r.fix


def test_release_stuck_uninstalling_with_nothing_to_restore():
    """The hook image was never pulled: no controller or hook ever ran, CoreDNS is as kubeadm made it, so the
    way out is to skip the hook, which has nothing to do."""
    from k2s_dns.deployment import remove_etcd_client

    from .doctor_fakes import KUBEADM_COREFILE, helm_secret

    state = healthy()
    state["helm"].append(helm_secret("uninstalling", 2))
    state["configmaps"][("kube-system", "coredns")]["data"]["Corefile"] = KUBEADM_COREFILE
    untouched = remove_etcd_client(state["deployments"][("kube-system", "coredns")])
    state["deployments"][("kube-system", "coredns")] = untouched
    r = failure(state)
    assert r.hop == "release" and "nothing to restore" in r.detail
    assert r.fix == (
        "helm uninstall k2s-dns -n k2s-dns --no-hooks; kubectl delete jobs,serviceaccounts,roles,rolebindings -A "
        "-l app.kubernetes.io/instance=k2s-dns,app.kubernetes.io/part-of=k2s-dns"
    )


def test_coredns_untouched_only_when_nothing_of_the_release_is_there():
    from k2s_dns.deployment import remove_etcd_client

    from .doctor_fakes import KUBEADM_COREFILE

    patched_deploy = healthy()["deployments"][("kube-system", "coredns")]
    plain_deploy = remove_etcd_client(patched_deploy)
    assert checks.coredns_untouched({"corefile": KUBEADM_COREFILE, "deployment": plain_deploy})
    assert not checks.coredns_untouched({"corefile": KUBEADM_COREFILE, "deployment": patched_deploy})
    marked = KUBEADM_COREFILE.replace("ready\n", "ready # k2s-dns: added\n", 1)
    assert marked != KUBEADM_COREFILE
    assert not checks.coredns_untouched({"corefile": marked, "deployment": plain_deploy})
    assert not checks.coredns_untouched(None)
    assert not checks.coredns_untouched({"corefile": None, "deployment": plain_deploy})


def test_release_objects_missing():
    state = healthy()
    del state["deployments"][("k2s-dns", "k2s-dns-external-dns")]
    del state["statefulsets"][("k2s-dns", "k2s-dns-etcd")]
    r = failure(state)
    assert r.detail == "objects of the release are missing: Deployment k2s-dns-external-dns, StatefulSet k2s-dns-etcd"
    assert r.fix == "helm upgrade k2s-dns charts/k2s-dns -n k2s-dns --reuse-values"


def pull_error(state: dict, image: str, pod_index: int = 0, container: int = 1) -> None:
    pod = state["pods"]["k2s-dns"][pod_index]
    pod["spec"]["containers"][container]["image"] = image
    pod["status"]["conditions"][1]["status"] = "False"
    pod["status"]["containerStatuses"][container]["state"] = {
        "waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"\nmore'}
    }


def test_image_with_a_tag_other_than_the_charts():
    state = healthy()
    pull_error(state, "ghcr.io/k2s-dns/k2s-dns-hook:does-not-exist")
    r = failure(state)
    assert r.hop == "release"
    assert r.detail == (
        "pod k2s-dns-etcd-0 container auth cannot pull image ghcr.io/k2s-dns/k2s-dns-hook:does-not-exist "
        '(ImagePullBackOff: Back-off pulling image "ghcr.io/k2s-dns/k2s-dns-hook:does-not-exist")'
    )
    assert r.fix.endswith(
        "helm upgrade k2s-dns charts/k2s-dns -n k2s-dns --reuse-values --set coredns.patch.image.tag="
    )
    assert "0.1.0" in r.fix


def test_image_overridden_by_the_release_goes_back_to_the_charts():
    from .doctor_fakes import helm_secret

    state = healthy()
    image = {"registry": "127.0.0.1:9", "tag": "does-not-exist"}
    state["helm"] = [helm_secret(config={"coredns": {"patch": {"image": image}}})]
    pull_error(state, "127.0.0.1:9/k2s-dns/k2s-dns-hook:does-not-exist")
    r = failure(state)
    assert "cannot pull image 127.0.0.1:9/k2s-dns/k2s-dns-hook:does-not-exist" in r.detail
    assert r.fix == (
        "the release overrides the chart's image (registry 127.0.0.1:9, tag does-not-exist); back to the chart's: "
        "helm upgrade k2s-dns charts/k2s-dns -n k2s-dns --reuse-values --set coredns.patch.image.registry=ghcr.io "
        "--set coredns.patch.image.tag="
    )


def test_image_that_was_never_loaded_says_how_to_load_it():
    state = healthy()
    pull_error(state, "ghcr.io/k2s-dns/k2s-dns-hook:0.1.0")
    r = failure(state)
    assert "cannot pull image ghcr.io/k2s-dns/k2s-dns-hook:0.1.0" in r.detail
    assert "make package (writes dist/k2s-dns-hook-0.1.0.tar)" in r.fix
    assert "ctr -n k8s.io images import k2s-dns-hook-0.1.0.tar" in r.fix
    assert "k2s image import -t k2s-dns-hook-0.1.0.tar --docker-archive" in r.fix
    assert "--set global.imageRegistry=<registry>" in r.fix


def test_upstream_image_pull_error_on_any_release_pod():
    state = healthy()
    image = "registry.k8s.io/external-dns/external-dns:v0.23.0"
    pull_error(state, image, pod_index=2, container=0)
    r = failure(state)
    assert r.hop == "release" and f"cannot pull image {image}" in r.detail
    assert r.fix.startswith(f"docker pull {image} && docker save {image} -o external-dns-v0.23.0.tar")


def test_etcd_pod_crash_looping():
    state = healthy()
    etcd = state["pods"]["k2s-dns"][0]
    etcd["status"]["conditions"][1]["status"] = "False"
    etcd["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    etcd["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error"}}
    r = failure(state)
    assert r.detail == "pod k2s-dns-etcd-0 container etcd is crash-looping (exit code 1, Error)"
    assert r.fix == "kubectl -n k2s-dns logs k2s-dns-etcd-0 -c etcd --previous"


def test_etcd_scaled_to_zero():
    state = healthy()
    state["statefulsets"][("k2s-dns", "k2s-dns-etcd")]["spec"]["replicas"] = 0
    state["pods"]["k2s-dns"].pop(0)
    r = failure(state)
    assert r.detail == "etcd is scaled to 0 (StatefulSet k2s-dns-etcd)"
    assert r.fix == "kubectl -n k2s-dns scale statefulset/k2s-dns-etcd --replicas=1"


def test_etcd_not_ready():
    state = healthy()
    state["statefulsets"][("k2s-dns", "k2s-dns-etcd")]["status"]["readyReplicas"] = 0
    state["pods"]["k2s-dns"].pop(0)
    r = failure(state)
    assert r.detail == "etcd 0/1 ready (StatefulSet k2s-dns-etcd)"
    assert r.fix == "kubectl -n k2s-dns describe statefulset k2s-dns-etcd"


def test_controller_error_phase():
    state = healthy()
    status = {"phase": "Error", "lastError": "Corefile refused: more than one server block serves 'cluster.local'"}
    state["configmaps"][("k2s-dns", "k2s-dns-controller-status")]["data"]["status.json"] = json.dumps(status)
    r = failure(state)
    assert r.detail == "controller: Corefile refused: more than one server block serves 'cluster.local'"
    assert r.fix.startswith("kubectl -n kube-system get events --field-selector involvedObject.name=coredns; ")
    assert r.fix.endswith("kubectl -n k2s-dns logs deployment/k2s-dns-controller")


def test_controller_scaled_to_zero_is_a_warning_only():
    state = healthy()
    state["deployments"][("k2s-dns", "k2s-dns-controller")]["spec"]["replicas"] = 0
    result = run(state)
    assert result.ok
    assert result.results[0].status == WARN and "controller scaled to 0" in result.results[0].detail
    assert result.results[0].fix == "kubectl -n k2s-dns scale deployment/k2s-dns-controller --replicas=1"


def test_unschedulable_controller_pod():
    state = healthy()
    controller = state["pods"]["k2s-dns"][1]
    controller["status"] = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"}],
    }
    r = failure(state)
    assert r.detail == "pod k2s-dns-controller-5c9d7-xk2lp is not scheduled: 0/1 nodes"
    assert r.fix == "kubectl -n k2s-dns describe pod k2s-dns-controller-5c9d7-xk2lp"


# ---------------------------------------------------------------------------------------------- hop 2: source


def test_wildcard_host():
    r = failure(healthy(), "*.apps.cluster.local")
    assert r.hop == "source"
    assert "CoreDNS's etcd plugin answers no name from a wildcard record" in r.detail
    assert "coredns/coredns/issues/4314" in r.detail
    assert r.fix.startswith("publish the concrete names instead") and "app.apps.cluster.local" in r.fix


def test_host_published_only_by_a_wildcard():
    state = healthy()
    state["ingresses"].append(ingress("wild", ["*.apps.cluster.local"], [ADDRESS]))
    r = failure(state, "shop.apps.cluster.local")
    assert r.detail.startswith(
        "only the wildcard *.apps.cluster.local of Ingress apps/wild covers shop.apps.cluster.local"
    )
    assert r.fix == (
        "add shop.apps.cluster.local itself as a host of Ingress apps/wild "
        "(a rule with host: shop.apps.cluster.local), or a DNSEndpoint for it"
    )


def test_host_outside_the_zone():
    state = healthy()
    state["ingresses"].append(ingress("out", ["app.example.test"], [ADDRESS]))
    r = failure(state, "app.example.test")
    assert r.detail == (
        "app.example.test is outside the zone cluster.local: ExternalDNS publishes only names under it "
        "(--domain-filter=cluster.local)"
    )
    assert r.fix == (
        "use a host under cluster.local (e.g. app.cluster.local), or move the zone: "
        "helm upgrade k2s-dns charts/k2s-dns -n k2s-dns --reuse-values --set zone=example.test"
    )


def test_host_excluded_by_exclude_domains():
    state = healthy()
    args = state["deployments"][("k2s-dns", "k2s-dns-external-dns")]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    args.append("--exclude-domains=web.cluster.local")
    r = failure(state)
    assert r.detail == "web.cluster.local is excluded by ExternalDNS's --exclude-domains=web.cluster.local"
    assert "remove it from externalDNS.extraArgs" in r.fix


def test_no_object_publishes_the_host():
    r = failure(healthy(), "nothing.cluster.local")
    assert (
        r.detail
        == "no object publishes nothing.cluster.local: no Ingress, Service (hostname annotation) has it among its hosts"
    )
    assert r.fix.startswith("add it to an Ingress: spec.rules[].host: nothing.cluster.local")


def test_ingress_without_an_address():
    state = healthy()
    state["ingresses"] = [ingress("web", [HOST], None)]
    r = failure(state)
    assert r.detail == (
        "Ingress apps/web has web.cluster.local but no address: status.loadBalancer is empty and it has no target "
        "annotation"
    )
    assert r.fix.startswith(
        "kubectl -n apps annotate ingress web external-dns.kubernetes.io/target=<address of your ingress controller>"
    )


@pytest.mark.parametrize("prefix", ["external-dns.kubernetes.io/", "external-dns.alpha.kubernetes.io/"])
def test_either_target_annotation_is_an_address(prefix):
    state = healthy()
    state["ingresses"] = [ingress("web", [HOST], None, {prefix + "target": ADDRESS})]
    result = run(state)
    assert result.ok and result.results[1].detail == f"Ingress apps/web: {HOST} -> {ADDRESS}"


def test_ingress_class_filtered_out():
    state = healthy()
    args = state["deployments"][("k2s-dns", "k2s-dns-external-dns")]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    args.append("--ingress-class=traefik")
    state["ingresses"][0]["spec"]["ingressClassName"] = "nginx"
    r = failure(state)
    assert r.detail == (
        "Ingress apps/web has web.cluster.local but is not published: its IngressClass is nginx but ExternalDNS "
        "takes only --ingress-class=traefik"
    )
    assert r.fix.startswith(
        'kubectl -n apps patch ingress web --type merge -p \'{"spec":{"ingressClassName":"traefik"}}\''
    )
    assert r.fix.endswith("--set externalDNS.ingressClass=")


def test_ingress_handed_to_another_controller():
    state = healthy()
    state["ingresses"][0]["metadata"]["annotations"] = {"external-dns.alpha.kubernetes.io/controller": "other"}
    r = failure(state)
    assert "annotation external-dns.kubernetes.io/controller=other hands it to another controller" in r.detail
    assert r.fix == "kubectl -n apps annotate ingress web external-dns.kubernetes.io/controller-"


def test_annotation_filter_excludes_it():
    state = healthy()
    args = state["deployments"][("k2s-dns", "k2s-dns-external-dns")]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    args.append("--annotation-filter=team in (a, b)")
    r = failure(state)
    assert "its annotations do not match --annotation-filter=team in (a, b)" in r.detail
    assert r.fix == "kubectl -n apps edit ingress web"


def gateway_state(accepted: bool = True, addresses: list[str] | None = None) -> dict:
    state = healthy()
    state["ingresses"] = []
    route = {
        "kind": "HTTPRoute",
        "metadata": {"name": "shop", "namespace": "apps", "annotations": {}},
        "spec": {"hostnames": [HOST], "parentRefs": [{"name": "gw"}]},
        "status": {
            "parents": [
                {
                    "parentRef": {"name": "gw"},
                    "conditions": [{"type": "Accepted", "status": "True" if accepted else "False"}],
                }
            ]
        },
    }
    gateway = {
        "metadata": {"name": "gw", "namespace": "apps"},
        "status": {"addresses": [{"value": a} for a in addresses or []]},
    }
    group = "gateway.networking.k8s.io"
    state["custom"] = {(group, "httproutes"): [route], (group, "gateways"): [gateway]}
    return state


def test_route_of_a_source_external_dns_does_not_watch():
    r = failure(gateway_state(addresses=[ADDRESS]))
    assert r.detail == (
        "HTTPRoute apps/shop has web.cluster.local but is not published: ExternalDNS does not watch HTTPRoutes "
        "(sources: ingress)"
    )
    assert r.fix == (
        "helm upgrade k2s-dns charts/k2s-dns -n k2s-dns --reuse-values "
        "--set 'externalDNS.sources={gateway-httproute,ingress}'"
    )


def with_source(state: dict, source: str) -> dict:
    args = state["deployments"][("k2s-dns", "k2s-dns-external-dns")]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    args.append(f"--source={source}")
    return state


def test_route_not_accepted():
    r = failure(with_source(gateway_state(accepted=False, addresses=[ADDRESS]), "gateway-httproute"))
    assert r.detail.endswith("is not published: no Gateway has Accepted it (status.parents)")
    assert r.fix.startswith("kubectl -n apps describe httproute shop")


def test_route_whose_gateway_has_no_address():
    r = failure(with_source(gateway_state(), "gateway-httproute"))
    assert r.detail == (
        "HTTPRoute apps/shop has web.cluster.local but its Gateway has no address (status.addresses) and no target "
        "annotation"
    )
    assert r.fix.startswith("kubectl get gateway -A")


def test_route_through_an_accepting_gateway_passes():
    result = run(with_source(gateway_state(addresses=[ADDRESS]), "gateway-httproute"))
    assert result.ok and result.results[1].detail == f"HTTPRoute apps/shop: {HOST} -> {ADDRESS}"


def test_load_balancer_service_without_an_address():
    state = with_source(healthy(), "service")
    state["ingresses"] = []
    state["services"][("apps", "lb")] = {
        "kind": "Service",
        "metadata": {"name": "lb", "namespace": "apps", "annotations": {"external-dns.kubernetes.io/hostname": HOST}},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.3.3"},
        "status": {"loadBalancer": {}},
    }
    r = failure(state)
    assert (
        r.detail
        == "Service apps/lb has web.cluster.local but no address (status.loadBalancer empty, no target annotation)"
    )
    assert r.fix == "kubectl -n apps annotate service lb external-dns.kubernetes.io/target=<address>"


def test_dnsendpoint_publishes_the_host():
    state = with_source(healthy(), "crd")
    state["ingresses"] = []
    endpoint = {
        "metadata": {"name": "db", "namespace": "apps"},
        "spec": {"endpoints": [{"dnsName": HOST, "targets": [ADDRESS]}]},
    }
    state["custom"] = {("externaldns.k8s.io", "dnsendpoints"): [endpoint]}
    result = run(state)
    assert result.ok and result.results[1].detail == f"DNSEndpoint apps/db: {HOST} -> {ADDRESS}"


# ---------------------------------------------------------------------------------------------- hop 3: ExternalDNS


def test_external_dns_deployment_missing():
    r = checks.check_external_dns(NAMES, {"deployment": None, "pods": [], "log": "", "now": 0})
    assert (r.status, r.hop) == (FAIL, "external-dns")
    assert r.detail == "Deployment k2s-dns-external-dns is missing"
    assert r.fix == "helm upgrade k2s-dns charts/k2s-dns -n k2s-dns --reuse-values"


def test_external_dns_scaled_to_zero():
    state = healthy()
    state["deployments"][("k2s-dns", "k2s-dns-external-dns")]["spec"]["replicas"] = 0
    state["pods"]["k2s-dns"].pop(2)
    r = failure(state)
    assert r.hop == "external-dns"
    assert r.detail == "ExternalDNS is scaled to 0: no record is written, changed or deleted"
    assert r.fix == "kubectl -n k2s-dns scale deployment/k2s-dns-external-dns --replicas=1"


def test_external_dns_in_dry_run():
    state = healthy()
    args = state["deployments"][("k2s-dns", "k2s-dns-external-dns")]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    args.append("--dry-run")
    r = failure(state)
    assert r.detail == "ExternalDNS runs with --dry-run: it writes nothing"
    assert r.fix.startswith("remove --dry-run from externalDNS.extraArgs")


def test_external_dns_crash_looping_shows_its_last_error():
    state = healthy()
    pod = state["pods"]["k2s-dns"][2]
    pod["status"]["conditions"][1]["status"] = "False"
    pod["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    state["logs"][("k2s-dns", pod["metadata"]["name"])] = external_dns_log(
        [(3, "failed to do run once: context deadline exceeded")], last_sync=None
    )
    r = failure(state)
    assert r.detail == (
        "ExternalDNS: pod k2s-dns-external-dns-6b8f4-q9rtz container external-dns is crash-looping (exit code ?); "
        "last error: failed to do run once: context deadline exceeded"
    )
    assert r.fix == "kubectl -n k2s-dns logs k2s-dns-external-dns-6b8f4-q9rtz -c external-dns --previous"


def test_external_dns_waiting_for_etcd_in_its_init_container():
    state = healthy()
    pod = state["pods"]["k2s-dns"][2]
    pod["status"]["conditions"][1]["status"] = "False"
    pod["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "PodInitializing"}}
    pod["status"]["initContainerStatuses"] = [{"name": "wait-for-etcd", "state": {"running": {}}}]
    r = failure(state)
    assert r.detail == (
        "ExternalDNS: pod k2s-dns-external-dns-6b8f4-q9rtz container wait-for-etcd (an init container) has not "
        "finished: the pod waits for it"
    )
    assert r.fix == "kubectl -n k2s-dns logs k2s-dns-external-dns-6b8f4-q9rtz -c wait-for-etcd   # what it waits for"


def test_external_dns_not_ready():
    state = healthy()
    state["deployments"][("k2s-dns", "k2s-dns-external-dns")]["status"]["readyReplicas"] = 0
    r = failure(state)
    assert r.detail == "ExternalDNS 0/1 ready"
    assert r.fix == "kubectl -n k2s-dns describe deployment k2s-dns-external-dns"


def test_external_dns_errors_since_its_last_sync():
    state = healthy()
    state["logs"][("k2s-dns", "k2s-dns-external-dns-6b8f4-q9rtz")] = external_dns_log(
        [(5, "Failed to do run once: etcdserver: permission denied (consecutive soft errors: 3)")], last_sync=30
    )
    r = failure(state)
    assert r.detail == (
        "ExternalDNS fails to sync 5s ago: Failed to do run once: etcdserver: permission denied "
        "(consecutive soft errors: 3)"
    )
    assert r.fix == "kubectl -n k2s-dns logs k2s-dns-etcd-0 -c auth   # etcd users and roles"


def test_external_dns_errors_before_a_good_sync_only_warn():
    state = healthy()
    state["logs"][("k2s-dns", "k2s-dns-external-dns-6b8f4-q9rtz")] = external_dns_log(
        [(90, "Failed to do run once: context deadline exceeded")], last_sync=2
    )
    result = run(state)
    assert result.ok and result.results[2].status == WARN
    assert "1 earlier error (last: Failed to do run once: context deadline exceeded)" in result.results[2].detail


# ---------------------------------------------------------------------------------------------- hop 4: etcd


def test_etcd_unreadable():
    state = healthy()
    state["etcd_error"] = "Error: etcdserver: authentication failed, invalid user ID or password"
    r = failure(state)
    assert r.hop == "etcd"
    assert r.detail == "cannot read etcd: Error: etcdserver: authentication failed, invalid user ID or password"
    assert r.fix.startswith("kubectl -n k2s-dns logs k2s-dns-etcd-0 -c auth")


def test_record_missing_from_etcd():
    state = healthy()
    state["etcd"] = {k: v for k, v in state["etcd"].items() if "/web/" not in k}
    r = failure(state)
    assert r.detail == (
        "no record for web.cluster.local in etcd (nothing under /skydns/local/cluster/web) although its TXT "
        "ownership record (ingress/apps/web) says ExternalDNS wrote it"
    )
    assert r.fix.startswith("kubectl -n k2s-dns rollout restart deployment/k2s-dns-external-dns")


def test_record_with_another_address_than_its_ingress():
    state = healthy()
    state["ingresses"] = [ingress("web", [HOST], ["192.0.2.99"])]
    r = failure(state)
    assert r.detail == "etcd has web.cluster.local -> 192.0.2.10, its objects say 192.0.2.99"
    assert r.fix == "kubectl -n k2s-dns logs deployment/k2s-dns-external-dns --since=10m | grep web.cluster.local"


def test_record_owned_by_someone_else():
    state = healthy()
    state["ingresses"] = [ingress("web", [HOST], ["192.0.2.99"])]
    key = next(k for k in state["etcd"] if "/web/" in k)
    state["etcd"][key] = json.dumps({"host": ADDRESS, "owner": "someone-else", "targetstrip": 1})
    r = failure(state)
    assert "the record belongs to owner someone-else" in r.detail
    assert (
        r.fix
        == "delete the foreign record: etcdctl del --prefix /skydns/local/cluster/web   (README: Troubleshooting, etcd)"
    )


def test_record_that_is_not_json():
    state = healthy()
    state["etcd"][corefile_key(HOST) + "/broken"] = "host=1.2.3.4"
    r = failure(state)
    assert r.detail.startswith("key /skydns/local/cluster/web/broken holds no valid record (")
    assert r.detail.endswith("CoreDNS answers SERVFAIL for web.cluster.local")
    assert r.fix.startswith("delete it: etcdctl del /skydns/local/cluster/web/broken")


def test_broken_record_fails_the_installation_check():
    state = healthy()
    state["etcd"][corefile_key("x.cluster.local")] = "[]"
    r = failure(state, None)
    assert r.hop == "etcd" and "key /skydns/local/cluster/x holds no valid record (not an object)" in r.detail
    assert r.fix.startswith("kubectl -n k2s-dns exec k2s-dns-etcd-0 -c etcd -- etcdctl ... del /skydns/local/cluster/x")


def test_external_etcd_is_skipped_with_the_reason():
    state = healthy()
    cm = state["configmaps"][("k2s-dns", "k2s-dns-coredns-desired")]
    cm["metadata"]["annotations"]["k2s-dns.io/etcd-mode"] = "external"
    result = run(state)
    etcd = result.results[3]
    assert etcd.status == SKIP and etcd.detail.startswith(
        "etcd mode external: doctor reads records only from the bundled"
    )
    assert "etcdctl get --prefix /skydns/local/cluster/web" in etcd.detail
    assert result.results[5].detail.endswith("as its objects has it")


# ---------------------------------------------------------------------------------------------- hop 5: CoreDNS


# What doctor says when the controller runs and CoreDNS is still not right.
HEAL = (
    "kubectl -n k2s-dns logs deployment/k2s-dns-controller; "
    "kubectl -n kube-system get events --field-selector involvedObject.name=coredns"
)


def set_corefile(state: dict, text: str) -> None:
    state["configmaps"][("kube-system", "coredns")]["data"]["Corefile"] = text


def test_managed_block_missing_with_the_controller_scaled_to_zero():
    state = healthy()
    state["deployments"][("k2s-dns", "k2s-dns-controller")]["spec"]["replicas"] = 0
    from k2s_dns import corefile

    set_corefile(state, corefile.unpatch(patched_corefile()))
    r = failure(state)
    assert r.hop == "coredns"
    assert r.detail == "no k2s-dns server block for cluster.local in the Corefile: names from etcd get NXDOMAIN"
    assert (
        r.fix
        == "kubectl -n k2s-dns scale deployment/k2s-dns-controller --replicas=1   # it puts it back within seconds"
    )


def test_managed_block_missing_without_a_controller():
    state = healthy()
    del state["deployments"][("k2s-dns", "k2s-dns-controller")]
    del state["configmaps"][("k2s-dns", "k2s-dns-controller-status")]
    state["pods"]["k2s-dns"].pop(1)
    from k2s_dns import corefile

    set_corefile(state, corefile.unpatch(patched_corefile()))
    r = failure(state)
    assert r.fix.startswith("helm upgrade k2s-dns charts/k2s-dns -n k2s-dns --reuse-values   # no controller")


def test_managed_block_missing_while_the_controller_runs():
    state = healthy()
    from k2s_dns import corefile

    set_corefile(state, corefile.unpatch(patched_corefile()))
    r = failure(state)
    assert r.fix == (
        "kubectl -n k2s-dns logs deployment/k2s-dns-controller; "
        "kubectl -n kube-system get events --field-selector involvedObject.name=coredns"
    )


def test_corefile_missing():
    state = healthy()
    del state["configmaps"][("kube-system", "coredns")]["data"]["Corefile"]
    r = failure(state)
    assert r.detail == "ConfigMap kube-system/coredns has no Corefile"
    assert r.fix == "kubectl -n kube-system get configmap coredns -o yaml"


def test_corefile_that_does_not_parse():
    state = healthy()
    set_corefile(state, patched_corefile() + "}\n")
    r = failure(state)
    assert r.detail.startswith("the Corefile: ")
    assert r.fix == "kubectl -n kube-system edit configmap coredns"


def test_markers_without_an_etcd_block():
    state = healthy()
    set_corefile(state, patched_corefile().replace("etcd cluster.local {", "etcdx cluster.local {"))
    r = failure(state)
    assert r.detail == "the k2s-dns server block 'cluster.local:53' (line 2) holds no etcd plugin for cluster.local"
    assert r.fix == HEAL


def test_etcd_block_reading_another_prefix():
    state = healthy()
    set_corefile(state, patched_corefile().replace("path /skydns", "path /other"))
    r = failure(state)
    assert r.detail == "the etcd block reads path /other, the release writes under /skydns"
    assert r.fix == HEAL


def test_managed_block_for_another_zone():
    state = healthy()
    set_corefile(state, patched_corefile().replace("cluster.local:53 {", "apps.cluster.local:53 {"))
    r = failure(state)
    assert r.detail == (
        "the k2s-dns server block 'apps.cluster.local:53' (line 2) is not for cluster.local, the release's zone"
    )
    assert r.fix == HEAL


def test_coredns_deployment_missing():
    state = healthy()
    del state["deployments"][("kube-system", "coredns")]
    r = failure(state)
    assert r.detail == "Deployment kube-system/coredns is missing"
    assert r.fix.startswith("kubectl -n kube-system get deployments")


def test_certificate_mounts_removed():
    state = healthy()
    deploy = state["deployments"][("kube-system", "coredns")]
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "k2s-dns-etcd-client"]
    r = failure(state)
    assert r.detail == (
        "the CoreDNS Deployment lacks the etcd certificate mount /etc/k2s-dns/etcd-client: its pods cannot read "
        "/etc/k2s-dns/etcd-client/tls.crt, which the Corefile names, and crash"
    )
    assert r.fix.startswith("kubectl -n k2s-dns logs deployment/k2s-dns-controller")


def test_certificate_secret_missing():
    state = healthy()
    del state["secrets"][("kube-system", "etcd-ca")]
    r = failure(state)
    assert r.detail == "Secret kube-system/etcd-ca, which CoreDNS mounts, is missing"
    assert r.fix.startswith("helm upgrade k2s-dns charts/k2s-dns -n k2s-dns --reuse-values")


def test_stale_host_alias():
    state = healthy()
    state["services"][("k2s-dns", "k2s-dns-etcd")]["spec"]["clusterIP"] = "10.96.99.99"
    r = failure(state)
    assert r.detail == (
        "CoreDNS's host alias k2s-dns-etcd.k2s-dns.svc.cluster.local -> 10.96.120.7 is stale: the etcd Service is at "
        "10.96.99.99"
    )
    assert r.fix == HEAL


def test_host_alias_missing():
    state = healthy()
    del state["deployments"][("kube-system", "coredns")]["spec"]["template"]["spec"]["hostAliases"]
    r = failure(state)
    assert r.detail == "the CoreDNS Deployment has no hostAliases entry for k2s-dns-etcd.k2s-dns.svc.cluster.local"
    assert r.fix == HEAL


def test_coredns_pod_crash_looping():
    state = healthy()
    pod = state["pods"]["kube-system"][0]
    pod["status"]["conditions"][1]["status"] = "False"
    pod["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    pod["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"exitCode": 1}}
    r = failure(state)
    assert r.detail == "CoreDNS pod coredns-7d8f9-abcde container coredns is crash-looping (exit code 1)"
    assert r.fix == "kubectl -n kube-system logs coredns-7d8f9-abcde -c coredns --previous"


def test_no_coredns_pod():
    state = healthy()
    state["pods"]["kube-system"] = []
    r = failure(state)
    assert r.detail == "no CoreDNS pod is ready (0/2)"
    assert r.fix == "kubectl -n kube-system describe deployment coredns"


def test_egress_network_policy_blocks_coredns_from_etcd():
    state = healthy()
    state["network_policies"]["kube-system"] = [
        {
            "metadata": {"name": "coredns-egress", "namespace": "kube-system"},
            "spec": {
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                "policyTypes": ["Egress"],
                "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}, {"port": 6443}]}],
            },
        }
    ]
    r = failure(state)
    assert r.detail == (
        "NetworkPolicy kube-system/coredns-egress isolates CoreDNS's egress and allows none to etcd (k2s-dns, TCP "
        "2379) (where the CNI enforces NetworkPolicy)"
    )
    assert r.fix.startswith("kubectl -n kube-system edit networkpolicy coredns-egress")


def test_etcd_network_policy_that_admits_other_coredns_labels():
    state = healthy()
    policy = state["network_policies"]["k2s-dns"][0]
    policy["spec"]["ingress"][0]["from"][1]["podSelector"] = {"matchLabels": {"app": "coredns"}}
    r = failure(state)
    assert r.detail == (
        'NetworkPolicy k2s-dns/k2s-dns-etcd admits no CoreDNS pod (kube-system, labels {"k8s-app":"kube-dns"}) to '
        "etcd's port 2379 (where the CNI enforces NetworkPolicy)"
    )
    assert r.fix == (
        "helm upgrade k2s-dns charts/k2s-dns -n k2s-dns --reuse-values "
        '--set-json \'networkPolicy.corednsPodLabels={"k8s-app":"kube-dns"}\''
    )


def test_recent_etcd_errors_in_the_coredns_log():
    from .doctor_fakes import ts

    state = healthy()
    state["logs"][("kube-system", "coredns-7d8f9-fghij")] = (
        f"{ts(10)} [ERROR] plugin/errors: 2 web.cluster.local. A: context deadline exceeded\n"
    )
    r = failure(state)
    assert r.detail == (
        "CoreDNS pod coredns-7d8f9-fghij fails to read etcd: plugin/errors: 2 web.cluster.local. A: "
        "context deadline exceeded"
    )
    assert r.fix.startswith("kubectl -n k2s-dns get pods,networkpolicy")


def test_old_etcd_errors_only_warn():
    from .doctor_fakes import ts

    state = healthy()
    state["logs"][("kube-system", "coredns-7d8f9-fghij")] = (
        f"{ts(250)} [ERROR] plugin/etcd: context deadline exceeded\n"
    )
    result = run(state)
    assert (
        result.ok and result.results[4].status == WARN and "1 etcd error earlier in the log" in result.results[4].detail
    )


def test_errors_of_a_closing_etcd_client_only_warn():
    """`reload` (or a shutdown) closes the old etcd client under queries still in flight: not a broken hop."""
    from .doctor_fakes import ts

    state = healthy()
    state["logs"][("kube-system", "coredns-7d8f9-fghij")] = (
        f"{ts(5)} [ERROR] plugin/etcd: rpc error: code = Canceled desc = grpc: the client connection is closing\n"
    )
    result = run(state)
    assert result.ok and result.results[4].status == WARN, result.results[4]


def test_errors_before_the_last_reload_only_warn_and_later_ones_fail():
    from .doctor_fakes import ts

    state = healthy()
    pod = ("kube-system", "coredns-7d8f9-fghij")
    before = f"{ts(30)} [ERROR] plugin/etcd: context deadline exceeded\n"
    reload = f"{ts(20)} [INFO] Reloading complete\n"
    state["logs"][pod] = before + reload
    result = run(state)
    assert result.ok and result.results[4].status == WARN, result.results[4]
    state["logs"][pod] = before + reload + f"{ts(10)} [ERROR] plugin/etcd: context deadline exceeded\n"
    assert (
        failure(state).detail
        == "CoreDNS pod coredns-7d8f9-fghij fails to read etcd: plugin/etcd: context deadline exceeded"
    )


# ---------------------------------------------------------------------------------------------- hop 6: the answer


def test_nxdomain_from_a_coredns_pod():
    state = healthy()
    state["dns"]["10.244.0.4"] = {"rcode": "NXDOMAIN", "records": []}
    r = failure(state)
    assert r.hop == "answer"
    assert r.detail == (
        "pod coredns-7d8f9-fghij 10.244.0.4 answers web.cluster.local A with NXDOMAIN (no records); etcd has 192.0.2.10"
    )
    assert r.fix.startswith("kubectl -n kube-system rollout restart deployment/coredns")


def test_servfail_from_the_service():
    state = healthy()
    state["dns"][DNS_SERVICE_IP] = {"rcode": "SERVFAIL", "records": []}
    r = failure(state)
    assert r.detail.startswith("Service kube-dns 10.96.0.10 answers web.cluster.local A with SERVFAIL")
    assert r.fix == "kubectl -n kube-system logs deployment/coredns | grep -i etcd   # CoreDNS cannot read etcd"


def test_another_address_than_etcd():
    state = healthy()
    state["dns"]["10.244.0.3"] = {"rcode": "NOERROR", "records": ["192.0.2.1"]}
    r = failure(state)
    assert r.detail == (
        "pod coredns-7d8f9-abcde 10.244.0.3 answers web.cluster.local A with NOERROR 192.0.2.1; etcd has 192.0.2.10"
    )
    assert r.fix.startswith("wait for the record TTL and ask again")


def test_coredns_unreachable_from_here_is_a_warning():
    state = healthy()
    state["dns"] = {}
    result = run(state)
    assert result.ok
    answer = result.results[5]
    assert answer.status == WARN and answer.detail.startswith(
        "CoreDNS not reachable from here (pod coredns-7d8f9-abcde"
    )
    assert "nslookup web.cluster.local" in answer.fix


def test_extra_server_is_asked_too():
    state = healthy()
    state["dns"] = {"127.0.0.1:30053": {"rcode": "NOERROR", "records": [ADDRESS]}}
    result = run(state, servers=[{"server": "127.0.0.1", "port": 30053, "what": "--server"}])
    answer = result.results[5]
    assert answer.status == WARN and answer.detail.startswith("1 server answers web.cluster.local -> 192.0.2.10")
    assert "3 not reachable from here" in answer.detail


# ---------------------------------------------------------------------------------------------- workstation


def test_workstation_resolver_that_reaches_coredns():
    state = healthy()
    state["local"] = {"addresses": [ADDRESS], "error": None}
    assert run(state).results[6].status == OK


def test_windows_workstation_gets_the_nrpt_rule():
    result = run(healthy(), platform="win32", servers=[{"server": "172.19.1.100", "port": 53, "what": "--server"}])
    assert result.results[6].fix.startswith(
        'Add-DnsClientNrptRule -Namespace ".cluster.local" -NameServers "172.19.1.100"'
    )


def test_linux_workstation_gets_resolvectl():
    assert (
        run(healthy())
        .results[6]
        .fix.startswith("resolvectl dns <interface> 10.96.0.10; resolvectl domain <interface> '~cluster.local'")
    )


# ---------------------------------------------------------------------------------------------- the runner


def test_api_access_denied_names_the_hop_and_the_permission():
    kube = FakeKube(healthy())
    kube.forbidden.add("ingresses")
    result = doctor_run.run(kube, NAMES, HOST)
    source = result.results[1]
    assert source.status == FAIL and source.detail.startswith(
        "cannot read from the API server: HTTP 403: ingresses is forbidden"
    )
    assert source.fix == (
        "doctor needs read access to the release, kube-system and Ingresses: kubectl auth can-i --list -n k2s-dns"
    )


def test_unexpected_shapes_fail_the_hop_instead_of_crashing():
    state = healthy()
    state["ingresses"] = [{"metadata": {"name": "x"}, "spec": {"rules": "not a list"}}]
    r = failure(state)
    assert r.hop == "source" and r.detail.startswith("doctor could not check this hop: ")


def test_json_output():
    data = json.loads(report.as_json(run(healthy())))
    assert data["ok"] is True and data["failed"] is None and data["host"] == HOST
    assert [h["hop"] for h in data["hops"]] == list(checks.HOPS)
    assert data["hops"][3]["data"]["records"] == {HOST: [ADDRESS]}


def test_table_output_puts_the_fix_under_the_failure():
    state = healthy()
    state["ingresses"] = [ingress("web", [HOST], None)]
    lines = report.table(run(state), width=200).splitlines()
    assert lines[1].split() == ["STATUS", "HOP", "DETAIL"]
    assert lines[3].startswith("FAIL   source        Ingress apps/web has web.cluster.local but no address")
    assert lines[4].lstrip().startswith("fix: kubectl -n apps annotate ingress web")
    assert "SKIP   external-dns  not checked: source failed first" in lines
    assert lines[-1].startswith("broken hop: source (")


def test_cli_exit_codes(monkeypatch, capsys):
    state = healthy()
    monkeypatch.setattr(cluster, "Kube", lambda *a: FakeKube(state))
    monkeypatch.setattr(dnsquery, "query", lambda *a, **k: {"rcode": "", "records": [], "error": "unreachable"})
    monkeypatch.setattr(dnsquery, "local_lookup", lambda *a, **k: {"addresses": [], "error": "nope"})
    assert cli.main(["doctor", HOST, "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    state["ingresses"] = []
    assert cli.main(["doctor", HOST]) == 1
    assert "broken hop: source" in capsys.readouterr().out
    assert cli.main(["doctor", "--output", "yaml"]) == 2


def test_cli_cannot_load_a_kubeconfig(monkeypatch, capsys):
    def refuse(*args):
        raise RuntimeError("Invalid kube-config file. No configuration found.")

    monkeypatch.setattr(cluster, "Kube", refuse)
    assert cli.main(["doctor"]) == 2
    assert "cannot load a kubeconfig: Invalid kube-config file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.96.0.10", {"server": "10.96.0.10", "port": 53}),
        ("127.0.0.1:30053", {"server": "127.0.0.1", "port": 30053}),
        ("[fd00::10]:5353", {"server": "fd00::10", "port": 5353}),
        ("fd00::10", {"server": "fd00::10", "port": 53}),
    ],
)
def test_server_option(text, expected):
    assert cli.parse_server(text) == {**expected, "what": "--server"}


# ---------------------------------------------------------------------------------------------- pure pieces


def test_external_dns_settings_from_the_charts_args():
    from .doctor_fakes import EXTERNAL_DNS_ARGS

    s = checks.external_dns_settings([*EXTERNAL_DNS_ARGS, "--source", "service", "--ingress-class=a,b"])
    assert s["sources"] == ["ingress", "service"] and s["ingress_classes"] == ["a", "b"]
    assert s["txt_owner_id"] == "k2s-dns"
    assert s["annotation_prefixes"] == ["external-dns.kubernetes.io/", "external-dns.alpha.kubernetes.io/"]
    assert checks.external_dns_settings(["--annotation-prefix=external-dns.alpha.kubernetes.io/"])[
        "annotation_prefixes"
    ] == ["external-dns.alpha.kubernetes.io/"]


@pytest.mark.parametrize(
    ("expression", "labels", "expected"),
    [
        ("team=a", {"team": "a"}, True),
        ("team==a,env!=prod", {"team": "a", "env": "dev"}, True),
        ("team in (a, b)", {"team": "c"}, False),
        ("team notin (a,b)", {"team": "c"}, True),
        ("team", {}, False),
        ("!team", {}, True),
        ("team in (a", {}, None),
    ],
)
def test_string_selectors(expression, labels, expected):
    assert checks.string_selector_matches(expression, labels) is expected


def test_records_decode_with_targetstrip_and_text():
    kvs = [
        {"key": "/skydns/local/cluster/web/1a", "value": json.dumps({"host": "2001:db8::1", "targetstrip": 1})},
        {"key": "/skydns/local/cluster/alias", "value": json.dumps({"host": "web.cluster.local"})},
        {"key": "/skydns/local/cluster/a-web/2b", "value": json.dumps({"text": "t", "targetstrip": 1})},
    ]
    assert [(r["name"], r["type"], r["value"]) for r in checks.decode_records(kvs, "/skydns/")] == [
        ("web.cluster.local", "AAAA", "2001:db8::1"),
        ("alias.cluster.local", "CNAME", "web.cluster.local"),
        ("a-web.cluster.local", "TXT", "t"),
    ]
    assert checks.key_path("Web.Cluster.Local.", "/skydns/") == "/skydns/local/cluster/web"
    assert checks.txt_name("web.cluster.local", "A", "pre-") == "pre-a-web.cluster.local"


def test_network_policy_named_port_and_ip_block():
    target = {"namespace": "k2s-dns", "labels": {"c": "etcd"}, "namespace_labels": {}, "ips": []}
    peer = {"namespace": "kube-system", "labels": {}, "namespace_labels": {}, "ips": ["10.244.0.3"]}
    policy = {
        "metadata": {"name": "p", "namespace": "k2s-dns"},
        "spec": {
            "podSelector": {"matchExpressions": [{"key": "c", "operator": "In", "values": ["etcd"]}]},
            "ingress": [
                {
                    "ports": [{"port": "client"}],
                    "from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.1.0/24"]}}],
                }
            ],
        },
    }
    assert checks.blocking_policies("Ingress", [policy], target, peer, 2379, "client") == []
    policy["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"] = ["10.244.0.0/24"]
    assert checks.blocking_policies("Ingress", [policy], target, peer, 2379, "client") == ["k2s-dns/p"]
    assert checks.blocking_policies("Egress", [policy], target, peer, 2379, "client") == []


def test_helm_release_secret_decodes():
    from .doctor_fakes import helm_secret

    config = {"coredns": {"patch": {"image": {"tag": "x"}}}, "global": {"imageRegistry": "reg.local"}}
    assert cluster._decode_helm_release(helm_secret("failed", 3, config)) == {
        "status": "failed",
        "revision": 3,
        "chart": "0.1.0",
        "image": {
            "overrides": {"tag": "x"},
            "defaults": {"registry": "ghcr.io", "repository": "k2s-dns/k2s-dns-hook", "tag": ""},
            "global_registry": "reg.local",
        },
    }


def test_etcdctl_json_output_decodes():
    b64 = base64.b64encode
    out = json.dumps({"kvs": [{"key": b64(b"/skydns/a").decode(), "value": b64(b'{"host":"1.2.3.4"}').decode()}]})
    assert cluster.parse_etcdctl_json(out) == [{"key": "/skydns/a", "value": '{"host":"1.2.3.4"}'}]
    assert cluster.etcd_command("/skydns/local", False, None) == [
        "etcdctl",
        "--endpoints=http://127.0.0.1:2379",
        "get",
        "--prefix",
        "/skydns/local",
        "-w",
        "json",
    ]


def test_root_password_secret_from_the_statefulset():
    sts = {"spec": {"template": {"spec": {"volumes": [{"name": "root", "secret": {"secretName": "mine"}}]}}}}
    assert cluster.root_secret_name(NAMES, sts) == "mine"
    assert cluster.root_secret_name(NAMES, None) == "k2s-dns-etcd-root"


def test_names_of_a_release_without_the_chart_name():
    names = checks.Names("dns", "infra")
    assert names.external_dns == "dns-k2s-dns-external-dns" and names.etcd_root == "dns-k2s-dns-etcd-root"


def test_coredns_fixture_deployment_carries_the_mounts():
    spec = coredns_deployment()["spec"]["template"]["spec"]
    assert {v["name"] for v in spec["volumes"]} == {"k2s-dns-etcd-client", "k2s-dns-etcd-ca"}
    assert release_labels("etcd")["app.kubernetes.io/component"] == "etcd"


# ---------------------------------------------------------------------------------------------- the DNS query


class Responder:
    """A UDP DNS server on loopback that answers from a dict (dnspython builds the answers)."""

    def __init__(self, answers: dict[str, tuple[str, list[str]]]):
        self.answers = answers
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            name = query.question[0].name.to_text().rstrip(".")
            rcode, values = self.answers.get(name, ("NXDOMAIN", []))
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.from_text(rcode))
            for value in values:
                kind, _, text = value.partition(" ")
                response.answer.append(dns.rrset.from_text(name + ".", 5, "IN", kind, text))
            self.sock.sendto(response.to_wire(), addr)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def responder():
    server = Responder(
        {
            "web.cluster.local": ("NOERROR", ["A 192.0.2.10", "A 192.0.2.11"]),
            "six.cluster.local": ("NOERROR", ["AAAA 2001:db8::6"]),
            "alias.cluster.local": ("NOERROR", ["CNAME web.cluster.local.", 'TXT "owner=a"']),
            "broken.cluster.local": ("SERVFAIL", []),
        }
    )
    yield server
    server.close()


@pytest.mark.parametrize("stdlib", [True, False])
def test_query_both_implementations(responder, monkeypatch, stdlib):
    if stdlib:
        monkeypatch.setattr(dnsquery, "_have_dnspython", lambda: False)

    def ask(name, rdtype="A"):
        answer = dnsquery.query("127.0.0.1", name, rdtype, port=responder.port, timeout=2)
        assert answer["error"] is None, answer
        return answer["rcode"], sorted((r["type"], r["value"]) for r in answer["records"])

    assert ask("web.cluster.local") == ("NOERROR", [("A", "192.0.2.10"), ("A", "192.0.2.11")])
    assert ask("six.cluster.local", "AAAA") == ("NOERROR", [("AAAA", "2001:db8::6")])
    assert ask("alias.cluster.local") == ("NOERROR", [("CNAME", "web.cluster.local"), ("TXT", "owner=a")])
    assert ask("broken.cluster.local") == ("SERVFAIL", [])
    assert ask("missing.cluster.local") == ("NXDOMAIN", [])


@pytest.mark.parametrize("stdlib", [True, False])
def test_query_timeout_is_an_error_not_an_exception(monkeypatch, stdlib):
    if stdlib:
        monkeypatch.setattr(dnsquery, "_have_dnspython", lambda: False)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        answer = dnsquery.query("127.0.0.1", HOST, port=silent.getsockname()[1], timeout=0.2)
    finally:
        silent.close()
    assert answer["error"] and answer["records"] == []


def test_wire_format_round_trip_with_compression():
    query = dnsquery.encode_query("web.cluster.local", "A", 4660)
    parsed = dns.message.from_wire(query)
    assert parsed.id == 4660 and parsed.question[0].name.to_text() == "web.cluster.local."
    response = dns.message.make_response(parsed)
    response.answer.append(dns.rrset.from_text("web.cluster.local.", 5, "IN", "A", "192.0.2.10"))
    decoded = dnsquery.decode_response(response.to_wire(), 4660)
    assert decoded["rcode"] == "NOERROR"
    assert decoded["records"] == [{"name": "web.cluster.local", "type": "A", "ttl": 5, "value": "192.0.2.10"}]
    with pytest.raises(dnsquery.WireError, match="id"):
        dnsquery.decode_response(response.to_wire(), 1)
    with pytest.raises(dnsquery.WireError, match="not a response"):
        dnsquery.decode_response(query)
    with pytest.raises(dnsquery.WireError):
        dnsquery.decode_response(b"\x00\x01")


def test_local_lookup_of_localhost_and_of_nothing():
    assert "127.0.0.1" in dnsquery.local_lookup("localhost")["addresses"]
    missing = dnsquery.local_lookup("no-such-name.invalid", timeout=5)
    assert missing["addresses"] == [] and missing["error"]


def test_server_only_asks_nothing_else_and_no_local_skips_the_workstation():
    state = healthy()
    state["dns"] = {"127.0.0.1:30053": {"rcode": "NOERROR", "records": [ADDRESS]}}
    server = {"server": "127.0.0.1", "port": 30053, "what": "--server"}
    result = run(state, servers=[server], direct=False, local=False)
    assert result.results[5].status == OK
    assert result.results[5].detail == "1 server answers web.cluster.local -> 192.0.2.10, as etcd has it"
    assert result.results[6].status == SKIP and "(--no-local)" in result.results[6].detail


# ---------------------------------------------------------------------------------------------- the client


class _Api(http.server.BaseHTTPRequestHandler):
    """Just enough of an API server for cluster.Kube: a few objects, lists, a log, discovery, a 403."""

    objects: ClassVar[dict[str, dict]] = {
        "/api/v1/namespaces/k2s-dns/configmaps/k2s-dns-coredns-desired": {
            "metadata": {"name": "d"},
            "data": {"a": "b"},
        },
        "/api/v1/namespaces/k2s-dns/pods": {"items": [{"metadata": {"name": "p"}}]},
        "/apis": {"groups": [{"name": "gateway.networking.k8s.io", "preferredVersion": {"version": "v1"}}]},
        "/apis/gateway.networking.k8s.io/v1/httproutes": {"items": [{"metadata": {"name": "r"}}]},
    }
    seen: ClassVar[list[str]] = []

    def do_GET(self):
        path = self.path.partition("?")[0].rstrip("/")
        self.seen.append(self.path)
        if path.endswith("/exec") and self.headers.get("Upgrade", "").lower() == "websocket":
            self._exec(urllib.parse.parse_qs(self.path.partition("?")[2]))
        elif path == "/api/v1/namespaces/k2s-dns/pods/p/log":
            self._send(200, b"2025-01-01T00:00:00.000000001Z line\n", "text/plain")
        elif path == "/apis/networking.k8s.io/v1/ingresses":
            self._send(403, json.dumps({"kind": "Status", "message": "ingresses is forbidden"}).encode())
        elif path in self.objects:
            self._send(200, json.dumps(self.objects[path]).encode())
        else:
            self._send(404, json.dumps({"kind": "Status", "message": "not found"}).encode())

    def _exec(self, query: dict) -> None:
        """The exec subprotocol (v4.channel.k8s.io) over a hand-made websocket: stdout, stderr, status, close."""
        accept = base64.b64encode(
            hashlib.sha1((self.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        )
        self.wfile.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
        )
        command = query.get("command", [])
        if command[-1:] == ["fail"]:
            status = {"status": "Failure", "details": {"causes": [{"reason": "ExitCode", "message": "2"}]}}
            frames = [b"\x02no such key\n", b"\x03" + json.dumps(status).encode()]
        else:
            frames = [b"\x01" + " ".join(command).encode() * 200, b"\x03" + json.dumps({"status": "Success"}).encode()]
        for frame in frames:
            self.wfile.write(_ws_frame(0x2, frame))
        self.wfile.write(_ws_frame(0x8, b"\x03\xe8"))
        self.wfile.flush()
        self.close_connection = True

    def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, size])
    elif size < 1 << 16:
        head = bytes([0x80 | opcode, 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + size.to_bytes(8, "big")
    return head + payload


def test_kube_reads_through_the_official_client(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    try:
        kube = cluster.Kube(str(kubeconfig))
        assert kube.configmap("k2s-dns", "k2s-dns-coredns-desired")["data"] == {"a": "b"}
        assert kube.configmap("k2s-dns", "missing") is None
        assert kube.pods("k2s-dns", "app=x") == [{"metadata": {"name": "p"}}]
        assert "labelSelector=app%3Dx" in _Api.seen[-1]
        assert kube.pod_log("k2s-dns", "p", "c", 300).endswith(" line\n")
        assert kube.custom_objects("gateway.networking.k8s.io", "httproutes") == [{"metadata": {"name": "r"}}]
        assert kube.custom_objects("externaldns.k8s.io", "dnsendpoints") is None
        with pytest.raises(cluster.KubeError, match="HTTP 403: ingresses is forbidden"):
            kube.ingresses()
        code, out, err = kube.exec("k2s-dns", "k2s-dns-etcd-0", "etcd", ["etcdctl", "get", "--prefix", "/skydns"])
        assert (code, err) == (0, "") and out == "etcdctl get --prefix /skydns" * 200
        assert kube.exec("k2s-dns", "k2s-dns-etcd-0", "etcd", ["etcdctl", "fail"]) == (2, "", "no such key\n")
    finally:
        server.shutdown()


def test_a_name_with_ipv4_and_ipv6_is_asked_for_a_and_compared_on_ipv4():
    state = healthy()
    state["ingresses"] = [ingress("web", [HOST], [ADDRESS, "2001:db8::10"])]
    key = corefile_key(HOST) + "/9f8e7d6c"
    state["etcd"][key] = json.dumps({"host": "2001:db8::10", "targetstrip": 1, "owner": "k2s-dns"})
    result = run(state)
    assert result.ok, report.table(result)
    assert result.results[5].detail == "3 servers answer web.cluster.local -> 192.0.2.10, as etcd has it"
    assert checks.expected_rdtype(["2001:db8::10"]) == "AAAA" and checks.expected_rdtype([]) == "A"


# --- the publication policy ----------------------------------------------------------------------------------


def test_a_host_the_kubernetes_plugin_answers_is_never_answered_from_etcd():
    state = healthy()
    host = "db.prod.apps.svc.cluster.local"
    state["ingresses"] = [ingress("web", [host], [ADDRESS])]
    r = failure(state, host)
    assert r.hop == "source"
    assert r.detail == (
        "db.prod.apps.svc.cluster.local is a name the kubernetes plugin answers (Service, Pod and DNS names of "
        "cluster.local): never published; CoreDNS leaves it to the kubernetes plugin and never answers it from etcd"
    )
    assert r.fix.startswith("use a name under the object's namespace instead (e.g. db.<namespace>.cluster.local)")


def test_a_host_admitted_before_the_policy_is_a_warning_naming_the_rule():
    state = healthy()
    state["namespaces"]["tenant"] = {}
    state["ingresses"] = [{**ingress("web", [HOST], [ADDRESS])}]
    state["ingresses"][0]["metadata"]["namespace"] = "tenant"
    source = next(r for r in run(state).results if r.hop == "source")
    assert source.status == WARN
    assert "it breaks the publication policy (inside the cluster domain cluster.local, namespace tenant may " in (
        source.detail
    )
    assert "helm upgrade stops until it is changed" in source.detail
    assert "publicationPolicy.trustedNamespaces={tenant}" in source.fix
    # The trust label lifts it.
    state["namespaces"]["tenant"] = {"k2s-dns.io/trusted-publisher": "true"}
    assert next(r for r in run(state).results if r.hop == "source").status == OK
