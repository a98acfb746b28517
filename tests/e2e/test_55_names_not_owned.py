"""Names k2s-dns does not own keep their answers and failure modes (README "Who may publish which name").

A pod's search list tries `<name>.<ns>.svc.<domain>`, `<name>.svc.<domain>` and `<name>.<domain>` before
`<name>`: each hijack vector is tried from a glibc pod (getent) and a musl pod (static musl getaddrinfo, the
musl-client image), in a namespace of their own (the victim), with an untrusted tenant publishing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from kubernetes.client.rest import ApiException

from tests.conftest import CHART

from .conftest import Ingresses
from .helpers import (
    NAMESPACE,
    RELEASE,
    controller_status,
    create_namespace,
    diagnostics,
    etcd_down,
    glibc_lookup,
    helm,
    kubectl,
    kubectl_json,
    musl_lookup,
    musl_pod,
    resolves_to,
    sleeper_pod,
    wait_for,
)

HIJACK = "10.66.6.6"


class World:
    """Namespaces tenant (untrusted, publishes), victim (its pods look names up) and prod (Services)."""

    def __init__(self, networking) -> None:
        suffix = uuid.uuid4().hex[:5]
        self.tenant, self.victim, self.prod = (f"{n}-{suffix}" for n in ("tenant", "victim", "prod"))
        for ns in (self.tenant, self.victim, self.prod):
            create_namespace(ns, trusted=False)
        self.ingresses = Ingresses(networking, self.tenant)
        self.db_ip = self.service(self.prod, "db")
        self.api_ip = self.service(self.victim, "api")

    @staticmethod
    def service(namespace: str, name: str) -> str:
        svc = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"port": 80}]},
        }
        kubectl("apply", "-f", "-", stdin=json.dumps(svc))
        return kubectl_json("-n", namespace, "get", "service", name)["spec"]["clusterIP"]

    def pods(self, hook_image: str) -> None:
        for pod in (sleeper_pod("glibc", self.victim, hook_image), musl_pod("musl", self.victim)):
            kubectl("apply", "-f", "-", stdin=json.dumps(pod))
        for pod in ("glibc", "musl"):
            kubectl("-n", self.victim, "wait", "--for=condition=Ready", f"pod/{pod}", "--timeout=120s")

    def glibc(self, name: str) -> set[str]:
        return glibc_lookup(self.victim, "glibc", name)

    def musl(self, name: str) -> set[str]:
        return musl_lookup(self.victim, "musl", name)

    def lookups(self) -> dict[str, Callable[[str], set[str]]]:
        return {"glibc": self.glibc, "musl": self.musl}

    def delete(self) -> None:
        for ns in (self.tenant, self.victim, self.prod):
            kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=false")


@pytest.fixture(scope="module")
def world(release, networking, hook_image) -> Iterator[World]:
    w = World(networking)
    w.pods(hook_image)
    yield w
    w.delete()


def vectors(w: World) -> dict[str, str]:
    """Host an attacker in `tenant` would publish -> the short name a victim pod looks up through it."""
    return {
        "github.com.cluster.local": "github.com",
        f"db.{w.prod}.{w.victim}.svc.cluster.local": f"db.{w.prod}",
        "wpad.cluster.local": "wpad",
        f"{w.tenant}.cluster.local": w.tenant,
    }


def test_admission_refuses_every_hijack_vector_naming_host_and_rule(world):
    for host in vectors(world):
        with pytest.raises(ApiException) as err:
            world.ingresses.apply("hijack", [host], [HIJACK])
        body = json.loads(err.value.body)
        assert err.value.status in (403, 422), body
        message = body["message"]
        assert f"Ingress host {host} refused by k2s-dns (release {NAMESPACE}/{RELEASE})" in message, message
        assert f"namespace {world.tenant} may publish only names under {world.tenant}.cluster.local" in message
        assert "publicationPolicy.trustedNamespaces" in message


def test_a_host_in_the_own_subtree_resolves_from_glibc_and_musl(world, resolver):
    host = f"web.{world.tenant}.cluster.local"
    world.ingresses.apply("web", [host], ["192.0.2.55"])
    wait_for(resolves_to(resolver, host, {"192.0.2.55"}), 60, "tenant's own name", diagnostics)
    for client, lookup in world.lookups().items():
        # The FQDN, and the short form a pod in another namespace uses through `cluster.local` in its search list.
        for name in (host, f"web.{world.tenant}"):
            wait_for(lambda n=name, lk=lookup: lk(n) == {"192.0.2.55"}, 30, f"{client}: {name}", diagnostics)


@pytest.fixture
def admitted_before_the_policy(world) -> Iterator[Callable[[str, list[str], str], None]]:
    """Create Ingresses as if the chart's admission policy had not been there (installed before the chart):
    the binding is away meanwhile and put back as it was."""
    name = f"{NAMESPACE}-{RELEASE}-ingress-hosts"
    binding = kubectl_json("get", "validatingadmissionpolicybinding", name)
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        binding["metadata"].pop(key, None)
    binding.pop("status", None)
    created: list[str] = []

    def create(ingress: str, hosts: list[str], address: str) -> None:
        kubectl("delete", "validatingadmissionpolicybinding", name, "--ignore-not-found")
        try:
            # The API server applies policy changes within a second or so: retry until the write goes through.
            wait_for(lambda: _try(lambda: world.ingresses.apply(ingress, hosts, [address])), 30, "policy binding gone")
            created.append(ingress)
        finally:
            kubectl("apply", "-f", "-", stdin=json.dumps(binding))

    yield create
    kubectl("apply", "-f", "-", stdin=json.dumps(binding))
    for ingress in created:
        kubectl("-n", world.tenant, "delete", "ingress", ingress, "--ignore-not-found")


def _try(action: Callable[[], None]) -> bool:
    try:
        action()
        return True
    except ApiException as err:
        if err.status in (403, 422):
            return False
        raise


def test_names_kubernetes_answers_are_never_answered_from_etcd(world, admitted_before_the_policy, resolver):
    """A tenant's Ingress for a name under svc. admitted before the policy: ExternalDNS does not publish it
    (--exclude-domains) and CoreDNS would not answer it from etcd anyway (the view); the victim's
    cross-namespace short name still reaches Service db in prod, from glibc and musl."""
    host = f"db.{world.prod}.{world.victim}.svc.cluster.local"
    admitted_before_the_policy("svc-hijack", [host], HIJACK)
    # Let ExternalDNS sync at least twice: a name it published would answer by then.
    time.sleep(5)
    assert resolver.query(host).rcode == "NXDOMAIN"
    for client, lookup in world.lookups().items():
        assert lookup(f"db.{world.prod}") == {world.db_ip}, client


def test_an_object_admitted_before_the_policy_is_reported_and_stops_helm_upgrade(world, admitted_before_the_policy):
    admitted_before_the_policy("github", ["github.com.cluster.local"], HIJACK)
    named = f"Ingress {world.tenant}/github: github.com.cluster.local"
    # The controller lists the sources once a minute: status, and a Warning Event on the Ingress.
    wait_for(
        lambda: any(v.startswith(named) for v in controller_status().get("publicationViolations", [])),
        90,
        "the controller's status names the Ingress",
        diagnostics,
    )
    events = kubectl_json("-n", world.tenant, "get", "events", "--field-selector", "involvedObject.name=github")
    reasons = {(e["reason"], e["type"]) for e in events["items"]}
    assert ("PublicationRefused", "Warning") in reasons, events
    result = helm("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", check=False)
    assert result.returncode != 0
    assert f"Ingress {world.tenant}/github: github.com.cluster.local" in result.stderr, result.stderr
    assert "publicationPolicy.allowExistingViolations=true" in result.stderr


def test_service_names_keep_resolving_while_etcd_is_down(world, resolver, service_probe):
    """k2s-dns's etcd is not part of any Service name's answer: scaled to 0, every Service name form resolves
    from glibc and musl, and NXDOMAIN under svc./pod. stays NXDOMAIN (not SERVFAIL)."""
    host = f"up.{world.tenant}.cluster.local"
    world.ingresses.apply("up", [host], ["192.0.2.56"])
    wait_for(resolves_to(resolver, host, {"192.0.2.56"}), 60, "published name before the outage", diagnostics)
    with etcd_down(resolver, host, "192.0.2.56") as start:
        wait_for(lambda: resolver.query(host).rcode == "SERVFAIL", 60, "published name answers SERVFAIL (etcd down)")
        forms = {
            f"db.{world.prod}.svc.cluster.local": world.db_ip,
            f"db.{world.prod}.svc": world.db_ip,
            f"db.{world.prod}": world.db_ip,
            f"api.{world.victim}": world.api_ip,
            "api": world.api_ip,
        }
        for client, lookup in world.lookups().items():
            for name, ip in forms.items():
                assert lookup(name) == {ip}, f"{client}: {name} while etcd is down"
        for name in (f"missing.{world.prod}.svc.cluster.local", "www.example.com.default.svc.cluster.local"):
            assert resolver.query(name).rcode == "NXDOMAIN", name
        assert service_probe.failures_since(start) == []
