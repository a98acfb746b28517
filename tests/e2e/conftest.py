"""Fixtures for the e2e suite: a real cluster from $KUBECONFIG, the chart installed on it."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.conftest import CHART

from .helpers import (
    NAMESPACE,
    RELEASE,
    Resolver,
    ServiceProbe,
    cluster_dns,
    create_namespace,
    glibc_lookup,
    helm,
    kubectl,
    kubectl_json,
    musl_lookup,
    musl_pod,
    sleeper_pod,
    wait_for,
)

CLIENT_NAMESPACE = "k2s-dns-e2e"
HOOK_IMAGE = os.environ.get("E2E_HOOK_IMAGE", "")


def pytest_configure(config: pytest.Config) -> None:
    """Long waits report progress live (helpers.progress), past pytest's output capture."""
    from . import helpers

    def live(message: str) -> None:
        reporter = config.pluginmanager.getplugin("terminalreporter")
        capture = config.pluginmanager.getplugin("capturemanager")
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"  [{time.strftime('%H:%M:%S')}] {message}")

    helpers.progress = live


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", autouse=True)
def _kubeconfig() -> None:
    if not os.environ.get("KUBECONFIG"):
        pytest.exit("the e2e suite needs KUBECONFIG (make e2e sets it up)", returncode=2)


@pytest.fixture(scope="session")
def resolver() -> Iterator[Resolver]:
    with cluster_dns() as resolver:
        yield resolver


@pytest.fixture(scope="session")
def kubernetes_ip() -> str:
    return kubectl_json("-n", "default", "get", "service", "kubernetes")["spec"]["clusterIP"]


@pytest.fixture(scope="session")
def service_probe(resolver: Resolver, kubernetes_ip: str) -> Iterator[ServiceProbe]:
    """Resolves kubernetes.default.svc.cluster.local throughout the whole session."""
    probe = ServiceProbe(resolver, "kubernetes.default.svc.cluster.local", kubernetes_ip).start()
    yield probe
    probe.stop()


def coredns_state() -> dict[str, Any]:
    cm = kubectl_json("-n", "kube-system", "get", "configmap", "coredns")
    deploy = kubectl_json("-n", "kube-system", "get", "deployment", "coredns")
    return {
        "Corefile": cm["data"]["Corefile"],
        "cm_annotations": cm["metadata"].get("annotations", {}),
        "spec": deploy["spec"],
    }


def install(*extra: str) -> None:
    helm(
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "--wait",
        "--timeout",
        "8m",
        *extra,
    )


def installed() -> bool:
    return helm("status", RELEASE, "-n", NAMESPACE, check=False).returncode == 0


@pytest.fixture(scope="session")
def coredns_before() -> dict[str, Any]:
    """CoreDNS's ConfigMap and Deployment as they were before k2s-dns was installed."""
    if installed():
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    return coredns_state()


@pytest.fixture(scope="session")
def release(coredns_before: dict[str, Any], service_probe: ServiceProbe) -> Iterator[str]:
    start = time.time()
    install()
    assert service_probe.failures_since(start) == [], "Service names failed to resolve during install"
    yield RELEASE
    if installed():
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true")


@pytest.fixture(scope="session")
def hook_image() -> str:
    from tools.chart_image import image_ref

    return HOOK_IMAGE or image_ref("coredns.patch.image")


@pytest.fixture(scope="session")
def client_pod(hook_image: str) -> Iterator[str]:
    """Two pods whose resolver is the cluster's (search path from their resolv.conf): `client` (glibc) and
    `musl` (the musl-client image)."""
    kubectl("create", "namespace", CLIENT_NAMESPACE)
    for pod in (sleeper_pod("client", CLIENT_NAMESPACE, hook_image), musl_pod("musl", CLIENT_NAMESPACE)):
        kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    for pod in ("client", "musl"):
        kubectl("-n", CLIENT_NAMESPACE, "wait", "--for=condition=Ready", f"pod/{pod}", "--timeout=120s")
    yield "client"
    kubectl("delete", "namespace", CLIENT_NAMESPACE, "--ignore-not-found", "--wait=true")


def pod_lookup(name: str) -> set[str]:
    """IPv4 addresses `name` resolves to inside the client pods (getaddrinfo, so the search path applies):
    glibc's, when musl's are the same; otherwise both, so the test's comparison fails and shows them."""
    glibc = glibc_lookup(CLIENT_NAMESPACE, "client", name)
    musl = musl_lookup(CLIENT_NAMESPACE, "musl", name)
    return glibc if glibc == musl else {f"glibc: {sorted(glibc)}", f"musl: {sorted(musl)}"}


@pytest.fixture
def namespace(request: pytest.FixtureRequest, release: str) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (its Ingresses with it)."""
    name = f"e2e-{request.node.name.removeprefix('test_')[:30].replace('_', '-')}-{uuid.uuid4().hex[:5]}".lower()
    create_namespace(name)
    yield name
    kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false")


class Ingresses:
    """Creates Ingresses (kubernetes client) and sets their status the way an ingress controller would."""

    def __init__(self, api: client.NetworkingV1Api, namespace: str):
        self.api = api
        self.namespace = namespace

    def apply(
        self, name: str, hosts: list[str], addresses: list[str] | None = None, annotations: dict[str, str] | None = None
    ) -> None:
        backend = client.V1IngressBackend(
            service=client.V1IngressServiceBackend(name="backend", port=client.V1ServiceBackendPort(number=80))
        )
        rules = [
            client.V1IngressRule(
                host=host,
                http=client.V1HTTPIngressRuleValue(
                    paths=[client.V1HTTPIngressPath(path="/", path_type="Prefix", backend=backend)]
                ),
            )
            for host in hosts
        ]
        body = client.V1Ingress(
            metadata=client.V1ObjectMeta(name=name, annotations=annotations or {}),
            spec=client.V1IngressSpec(rules=rules),
        )
        try:
            self.api.create_namespaced_ingress(self.namespace, body)
        except ApiException as err:
            if err.status != 409:
                raise
            self.api.patch_namespaced_ingress(
                name,
                self.namespace,
                {"spec": {"rules": [client.ApiClient().sanitize_for_serialization(rule) for rule in rules]}},
            )
        if addresses is not None:
            self.set_addresses(name, addresses)

    def set_addresses(self, name: str, addresses: list[str]) -> None:
        status = {"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in addresses]}}}
        self.api.patch_namespaced_ingress_status(name, self.namespace, status)

    def delete(self, name: str) -> None:
        self.api.delete_namespaced_ingress(name, self.namespace)
        wait_for(
            lambda: not self.api.list_namespaced_ingress(self.namespace, field_selector=f"metadata.name={name}").items,
            60,
            f"Ingress {name} deleted",
        )


@pytest.fixture(scope="session")
def networking() -> client.NetworkingV1Api:
    config.load_kube_config()
    return client.NetworkingV1Api()


@pytest.fixture
def ingresses(networking: client.NetworkingV1Api, namespace: str) -> Ingresses:
    return Ingresses(networking, namespace)


FIGURES: list[str] = []


@pytest.fixture
def figure() -> Callable[[str], None]:
    """Report a measured figure: printed at the end of the run (the closing notes quote them)."""

    def _record(text: str) -> None:
        FIGURES.append(text)

    return _record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("measured figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
