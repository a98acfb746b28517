"""Every source besides Ingress: Gateway API routes, LoadBalancer Services, DNSEndpoints; both annotation prefixes.

The release is upgraded with every source for this module (`--reuse-values`) and put back to its previous
sources afterwards. The Gateway API standard CRDs come from the pinned sigs.k8s.io/gateway-api module
(tests/cluster/gateway-crds.sh); no Gateway controller runs: the tests set the Gateway's addresses and the
routes' Accepted condition themselves, as they set an Ingress's status.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests.conftest import CHART, REPO

from .conftest import install
from .helpers import (
    NAMESPACE,
    RELEASE,
    ZONE,
    diagnostics,
    helm,
    is_nxdomain,
    kubectl,
    kubectl_json,
    resolves_to,
    wait_for,
)

PROPAGATION = 60  # generous: the chart's defaults publish in about a second
EVERY_SOURCE = ["ingress", "service", "gateway-httproute", "gateway-grpcroute", "gateway-tlsroute", "crd"]
GATEWAY_API = "gateway.networking.k8s.io"
LEGACY_PREFIX = "external-dns.alpha.kubernetes.io/"
PREFIX = "external-dns.kubernetes.io/"


def cname_chain(resolver, name: str) -> list[str]:
    """The CNAME targets in the answer to an A query for name."""
    response = dns.query.udp(dns.message.make_query(name, "A"), resolver.host, port=resolver.port, timeout=2)
    return [item.to_text() for rrset in response.answer if rrset.rdtype == dns.rdatatype.CNAME for item in rrset]


def wait_until_resolves(resolver, name: str, expected: set[str], rdtype: str = "A") -> None:
    what = f"{name} {rdtype} {' '.join(sorted(expected))}"
    wait_for(resolves_to(resolver, name, expected, rdtype), PROPAGATION, what, diagnostics)


def wait_until_gone(resolver, name: str) -> None:
    wait_for(is_nxdomain(resolver, name), PROPAGATION, f"{name} NXDOMAIN", diagnostics)


def apply(obj: dict) -> None:
    kubectl("apply", "-f", "-", stdin=json.dumps(obj))


def patch_status(kind: str, namespace: str, name: str, status: dict) -> None:
    kubectl(
        "-n",
        namespace,
        "patch",
        kind,
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def release_sources() -> list[str]:
    values = json.loads(helm("get", "values", RELEASE, "-n", NAMESPACE, "--all", "-o", "json").stdout)
    return values["externalDNS"]["sources"]


def external_dns_rules() -> list[dict]:
    return kubectl_json("get", "clusterrole", f"{RELEASE}-external-dns")["rules"]


@pytest.fixture(scope="module")
def every_source(release: str) -> Iterator[list[str]]:
    """The release with every source on (and the CRDs they need), restored to its sources afterwards."""
    previous = release_sources()
    subprocess.run([str(REPO / "tests" / "cluster" / "gateway-crds.sh")], check=True)
    # helm upgrade never installs crds/: a release installed by an older chart has no DNSEndpoint CRD.
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=k2s-dns-e2e", "-f", str(CHART / "crds"))
    kubectl("wait", "--for=condition=Established", "crd/dnsendpoints.externaldns.k8s.io", "--timeout=60s")
    install("--reuse-values", "--set", f"externalDNS.sources={{{','.join(EVERY_SOURCE)}}}")
    assert release_sources() == EVERY_SOURCE
    yield EVERY_SOURCE
    install("--reuse-values", "--set-json", f"externalDNS.sources={json.dumps(previous)}")
    assert release_sources() == previous
    resources = {r for rule in external_dns_rules() for r in rule["resources"]}
    assert not resources & {"gateways", "httproutes", "grpcroutes", "tlsroutes", "dnsendpoints"}, resources


# --- Gateway API routes ----------------------------------------------------------------------------------------

ROUTES = {
    # kind: (plural, the Gateway listener it attaches to (sectionName), spec beyond hostnames and parentRefs)
    "HTTPRoute": ("httproutes", "http", {}),
    "GRPCRoute": ("grpcroutes", "http", {}),
    # TLSRoute v1 requires exactly one rule with a backend.
    "TLSRoute": ("tlsroutes", "tls", {"rules": [{"backendRefs": [{"name": "backend", "port": 443}]}]}),
}


def apply_gateway(namespace: str, name: str, addresses: list[str]) -> None:
    apply(
        {
            "apiVersion": f"{GATEWAY_API}/v1",
            "kind": "Gateway",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "gatewayClassName": "k2s-dns-e2e",
                "listeners": [
                    {"name": "http", "protocol": "HTTP", "port": 80},
                    {"name": "tls", "protocol": "TLS", "port": 443, "tls": {"mode": "Passthrough"}},
                ],
            },
        }
    )
    set_gateway_addresses(namespace, name, addresses)


def set_gateway_addresses(namespace: str, name: str, addresses: list[str]) -> None:
    patch_status(
        f"gateways.{GATEWAY_API}",
        namespace,
        name,
        {"addresses": [{"type": "IPAddress", "value": ip} for ip in addresses]},
    )


def apply_route(kind: str, namespace: str, name: str, gateway: str, hostnames: list[str]) -> None:
    """Create or change a route attached to `gateway`, and accept it as the Gateway's controller would."""
    plural, listener, spec = ROUTES[kind]
    apply(
        {
            "apiVersion": f"{GATEWAY_API}/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"parentRefs": [{"name": gateway, "sectionName": listener}], "hostnames": hostnames, **spec},
        }
    )
    generation = kubectl_json("-n", namespace, "get", f"{plural}.{GATEWAY_API}", name)["metadata"]["generation"]
    accepted = {
        "type": "Accepted",
        "status": "True",
        "reason": "Accepted",
        "message": "accepted by the e2e suite",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": generation,
    }
    parent = {"group": GATEWAY_API, "kind": "Gateway", "name": gateway, "sectionName": listener}
    patch_status(
        f"{plural}.{GATEWAY_API}",
        namespace,
        name,
        {"parents": [{"parentRef": parent, "controllerName": "k2s-dns.local/e2e", "conditions": [accepted]}]},
    )


@pytest.mark.parametrize("kind", sorted(ROUTES))
def test_route_hostnames_resolve_change_and_disappear(kind, every_source, namespace, resolver):
    plural = ROUTES[kind][0]
    label = kind.lower()
    first, second = f"{label}-a.{ZONE}", f"{label}-b.{ZONE}"
    apply_gateway(namespace, "gw", ["192.0.2.80"])
    apply_route(kind, namespace, "route", "gw", [first])
    wait_until_resolves(resolver, first, {"192.0.2.80"})
    # The Gateway's address changes: the route's name follows.
    set_gateway_addresses(namespace, "gw", ["192.0.2.81", "192.0.2.82"])
    wait_until_resolves(resolver, first, {"192.0.2.81", "192.0.2.82"})
    # The route's hostname changes: the new name appears, the old one goes.
    apply_route(kind, namespace, "route", "gw", [second])
    wait_until_resolves(resolver, second, {"192.0.2.81", "192.0.2.82"})
    wait_until_gone(resolver, first)
    # The route goes: so does its name.
    kubectl("-n", namespace, "delete", f"{plural}.{GATEWAY_API}", "route", "--wait=true")
    wait_until_gone(resolver, second)


def test_unaccepted_route_gets_no_name(every_source, namespace, resolver):
    apply_gateway(namespace, "gw", ["192.0.2.85"])
    apply(
        {
            "apiVersion": f"{GATEWAY_API}/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "pending", "namespace": namespace},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [f"pending-route.{ZONE}"]},
        }
    )
    # A published name for contrast, so a sync has certainly happened when the pending one is checked.
    apply_route("HTTPRoute", namespace, "accepted", "gw", [f"accepted-route.{ZONE}"])
    wait_until_resolves(resolver, f"accepted-route.{ZONE}", {"192.0.2.85"})
    assert resolver.query(f"pending-route.{ZONE}").rcode == "NXDOMAIN"


# --- Services ------------------------------------------------------------------------------------------------


def apply_load_balancer(namespace: str, name: str, annotations: dict[str, str], ip: str) -> None:
    apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {
                "type": "LoadBalancer",
                "allocateLoadBalancerNodePorts": False,
                "ports": [{"name": "http", "port": 80, "targetPort": 80}],
            },
        }
    )
    # No load-balancer controller runs on the test cluster: set the address as one would.
    set_load_balancer_ip(namespace, name, ip)


def set_load_balancer_ip(namespace: str, name: str, ip: str) -> None:
    patch_status("service", namespace, name, {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}})


@pytest.mark.parametrize("prefix", [PREFIX, LEGACY_PREFIX], ids=["prefix", "legacy-prefix"])
def test_load_balancer_service_hostname_annotation_resolves(prefix, every_source, namespace, resolver):
    host = f"lb-{'legacy' if prefix == LEGACY_PREFIX else 'new'}.{ZONE}"
    apply_load_balancer(namespace, "lb", {f"{prefix}hostname": host}, "192.0.2.90")
    wait_until_resolves(resolver, host, {"192.0.2.90"})
    set_load_balancer_ip(namespace, "lb", "192.0.2.91")
    wait_until_resolves(resolver, host, {"192.0.2.91"})
    kubectl("-n", namespace, "delete", "service", "lb", "--wait=true")
    wait_until_gone(resolver, host)


def test_other_service_types_are_not_published(every_source, namespace, resolver):
    # externalDNS.serviceTypes defaults to [LoadBalancer]: an ExternalName Service (a CNAME to its
    # externalName without the filter) gets no name, and ExternalDNS needs no access to Pods or Nodes.
    apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "external",
                "namespace": namespace,
                "annotations": {f"{PREFIX}hostname": f"external-name.{ZONE}"},
            },
            "spec": {"type": "ExternalName", "externalName": f"lb-contrast.{ZONE}"},
        }
    )
    apply_load_balancer(namespace, "lb", {f"{PREFIX}hostname": f"lb-contrast.{ZONE}"}, "192.0.2.92")
    wait_until_resolves(resolver, f"lb-contrast.{ZONE}", {"192.0.2.92"})
    assert resolver.query(f"external-name.{ZONE}").rcode == "NXDOMAIN"
    assert resolver.query(f"external-name.{ZONE}", "CNAME").rcode == "NXDOMAIN"
    resources = {r for rule in external_dns_rules() for r in rule["resources"]}
    assert "services" in resources and not resources & {"pods", "nodes", "endpointslices"}, resources


# --- DNSEndpoint (source crd) --------------------------------------------------------------------------------


def test_dnsendpoint_a_cname_and_txt_records(every_source, namespace, resolver):
    a, cname, txt = f"host.dnsep.{ZONE}", f"alias.dnsep.{ZONE}", f"txt.dnsep.{ZONE}"
    endpoint = {
        "apiVersion": "externaldns.k8s.io/v1alpha1",
        "kind": "DNSEndpoint",
        "metadata": {"name": "records", "namespace": namespace},
        "spec": {
            "endpoints": [
                {"dnsName": a, "recordType": "A", "targets": ["192.0.2.100"]},
                {"dnsName": cname, "recordType": "CNAME", "targets": [a]},
                {"dnsName": txt, "recordType": "TXT", "targets": ["k2s-dns-e2e=1"]},
            ]
        },
    }
    apply(endpoint)
    wait_until_resolves(resolver, a, {"192.0.2.100"})
    # An A query for the alias gets the CNAME and, since its target is in the zone, the target's address.
    # (A query of type CNAME gets no answer: CoreDNS's etcd plugin looks CNAME up by exact key, and
    # ExternalDNS stores every record one level deeper, under a per-target key.)
    wait_until_resolves(resolver, cname, {"192.0.2.100"})
    assert cname_chain(resolver, cname) == [f"{a}."]
    wait_until_resolves(resolver, txt, {'"k2s-dns-e2e=1"'}, "TXT")
    # ExternalDNS records the generation it has seen (dnsendpoints/status update, its only write grant).
    wait_for(
        lambda: (
            kubectl("-n", namespace, "get", "dnsendpoint", "records", "-o", "jsonpath={.status.observedGeneration}")
            == "1"
        ),
        PROPAGATION,
        "DNSEndpoint status.observedGeneration 1",
        diagnostics,
    )
    endpoint["spec"]["endpoints"][0]["targets"] = ["192.0.2.101"]
    apply(endpoint)
    wait_until_resolves(resolver, a, {"192.0.2.101"})
    kubectl("-n", namespace, "delete", "dnsendpoint", "records", "--wait=true")
    for name in (a, cname, txt):
        wait_until_gone(resolver, name)


# --- Annotation prefixes (Ingress) ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", [PREFIX, LEGACY_PREFIX], ids=["prefix", "legacy-prefix"])
def test_ingress_target_annotation_of_either_prefix_wins(prefix, ingresses, resolver):
    host = f"target-{'legacy' if prefix == LEGACY_PREFIX else 'new'}.{ZONE}"
    ingresses.apply("annotated", [host], ["192.0.2.110"], annotations={f"{prefix}target": "198.51.100.11"})
    wait_until_resolves(resolver, host, {"198.51.100.11"})


def test_new_prefix_wins_when_both_are_set(ingresses, resolver):
    host = f"target-both.{ZONE}"
    annotations = {f"{LEGACY_PREFIX}target": "198.51.100.12", f"{PREFIX}target": "198.51.100.13"}
    ingresses.apply("both", [host], ["192.0.2.111"], annotations=annotations)
    wait_until_resolves(resolver, host, {"198.51.100.13"})
