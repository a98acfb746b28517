"""The cluster is shaped like the users' (tests/cluster/up.sh): two nodes with pod traffic between them
(kube-router), NetworkPolicy enforced (kube-router's firewall), a default StorageClass that provisions.
On it: every CoreDNS pod, on either node, answers etcd names to pods on either node, and the chart's
NetworkPolicy keeps every pod but ExternalDNS and CoreDNS away from etcd's client port."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from .helpers import (
    NAMESPACE,
    RELEASE,
    converged,
    diagnostics,
    kubectl,
    kubectl_json,
    resolves_to,
    sleeper_pod,
    wait_for,
)

PROBE_LABEL = "k2s-dns-e2e/probe"
# A probe that answers at once with what happened: "connected", or the error's class and text.
CONNECT = (
    "import socket, sys\n"
    "s = socket.socket(); s.settimeout(float(sys.argv[3]))\n"
    "try:\n"
    "    s.connect((sys.argv[1], int(sys.argv[2]))); print('connected')\n"
    "except Exception as err:\n"
    "    print(type(err).__name__, err)\n"
)
QUERY = (
    "import json, sys\n"
    "from k2s_dns.doctor.dnsquery import query\n"
    "print(json.dumps(query(sys.argv[1], sys.argv[2], timeout=2.0)))\n"
)


def nodes() -> list[str]:
    return sorted(n["metadata"]["name"] for n in kubectl_json("get", "nodes")["items"])


def coredns_pods() -> list[dict]:
    """The CoreDNS pods that serve: ready and not terminating (a rollout leaves old ones for a while)."""
    pods = kubectl_json("-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns")["items"]
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]


def coredns_on_every_node() -> bool:
    """CoreDNS (kubeadm's Deployment prefers one replica a node) covers both nodes, and runs the current
    template; when a restart put both replicas on one node, one is deleted and the scheduler places its
    replacement on the other."""
    kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s")
    deploy = kubectl_json("-n", "kube-system", "get", "deployment", "coredns")
    pods = coredns_pods()
    if len(pods) != deploy["spec"]["replicas"]:
        return False
    if {p["spec"].get("nodeName") for p in pods} == set(nodes()):
        return True
    kubectl("-n", "kube-system", "delete", "pod", pods[0]["metadata"]["name"], "--wait=false")
    return False


class Probes:
    """One pod per node (the chart's own image: Python and the doctor's DNS client), restricted-compliant."""

    def __init__(self, namespace: str, image: str):
        self.namespace = namespace
        self.image = image
        self.pods: dict[str, str] = {}

    def start(self, name: str, labels: dict[str, str] | None = None) -> dict[str, str]:
        """Pods `name-<n>`, one on each node, with `labels`; returns node -> pod."""
        placed = {}
        for index, node in enumerate(nodes()):
            pod = f"{name}-{index}"
            spec = sleeper_pod(pod, self.namespace, self.image, labels, node)
            kubectl("apply", "-f", "-", stdin=json.dumps(spec))
            placed[node] = pod
        for pod in placed.values():
            kubectl("-n", self.namespace, "wait", "--for=condition=Ready", f"pod/{pod}", "--timeout=120s")
        self.pods.update({pod: node for node, pod in placed.items()})
        return placed

    def python(self, pod: str, script: str, *args: str) -> str:
        return kubectl("-n", self.namespace, "exec", pod, "--", "python3", "-c", script, *args).strip()

    def connect(self, pod: str, host: str, port: int, timeout: float = 3.0) -> str:
        return self.python(pod, CONNECT, host, str(port), str(timeout))

    def query(self, pod: str, server: str, name: str) -> dict:
        return json.loads(self.python(pod, QUERY, server, name))

    def stop(self) -> None:
        for pod in self.pods:
            kubectl("-n", self.namespace, "delete", "pod", pod, "--ignore-not-found", "--wait=false")


@pytest.fixture
def probes(hook_image: str, namespace: str) -> Iterator[Callable[[str], Probes]]:
    made: list[Probes] = []

    def make(where: str = "") -> Probes:
        made.append(Probes(where or namespace, hook_image))
        return made[-1]

    yield make
    for probe in made:
        probe.stop()


def test_two_nodes_pods_on_both(release):
    """The cluster has a worker, and the release's pods and CoreDNS are not all on one node."""
    names = nodes()
    assert len(names) == 2, f"make cluster should give a control-plane node and a worker: {names}"
    roles = {n["metadata"]["name"]: n["metadata"]["labels"] for n in kubectl_json("get", "nodes")["items"]}
    assert sum("node-role.kubernetes.io/control-plane" in labels for labels in roles.values()) == 1
    wait_for(coredns_on_every_node, 180, "a CoreDNS pod on each node", diagnostics, interval=5)


def test_every_coredns_pod_answers_etcd_names_across_nodes(release, ingresses, resolver, probes):
    """From a pod on each node, each CoreDNS pod (one a node) answers a name that lives only in etcd: pod
    traffic crosses nodes both ways, and each CoreDNS pod reaches etcd, wherever etcd runs."""
    host = f"topology-{ingresses.namespace.rsplit('-', 1)[-1]}.cluster.local"
    ingresses.apply("topology", [host], ["192.0.2.15"])
    wait_for(resolves_to(resolver, host, {"192.0.2.15"}), 90, "the name through the NodePort", diagnostics)
    wait_for(converged, 120, "controller converged", diagnostics)
    wait_for(coredns_on_every_node, 180, "a CoreDNS pod on each node", diagnostics, interval=5)
    dns = probes("")
    clients = dns.start("dns")
    answers = {}
    for pod in coredns_pods():
        server, server_node = pod["status"]["podIP"], pod["spec"]["nodeName"]
        for client_node, client in clients.items():
            reply: dict = {}
            for _ in range(3):  # a datagram can be lost; a stub resolver asks again too
                reply = dns.query(client, server, host)
                if sorted(r["value"] for r in reply["records"] if r["type"] == "A") == ["192.0.2.15"]:
                    break
            answers[f"{client_node} -> CoreDNS on {server_node} ({server})"] = reply
    addresses = {k: sorted(r["value"] for r in v["records"] if r["type"] == "A") for k, v in answers.items()}
    assert all(a == ["192.0.2.15"] for a in addresses.values()), json.dumps(answers, indent=2)
    assert len(answers) == 4, answers  # two clients, two servers


def etcd_client_address() -> str:
    return kubectl("-n", NAMESPACE, "get", "service", f"{RELEASE}-etcd", "-o", "jsonpath={.spec.clusterIP}")


def test_network_policy_keeps_other_pods_from_etcd(release, probes, figure):
    """A pod in the release's namespace without ExternalDNS's labels, on either node, cannot open a
    connection to etcd's client port; the same pod with a label another NetworkPolicy admits can. So the
    refusal is the policy's doing (kube-router enforces it), not a broken network."""
    etcd = etcd_client_address()
    on_etcds_namespace = probes(NAMESPACE)
    denied = on_etcds_namespace.start("e2e-unlabelled")
    admitted = on_etcds_namespace.start("e2e-admitted", {PROBE_LABEL: "admitted"})
    allow = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "e2e-admit-probe", "namespace": NAMESPACE},
        "spec": {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/component": "etcd", "app.kubernetes.io/instance": RELEASE}
            },
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {PROBE_LABEL: "admitted"}}}], "ports": [{"port": 2379}]}
            ],
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(allow))
    applied = time.monotonic()
    try:
        for node, pod in admitted.items():
            wait_for(
                lambda p=pod: on_etcds_namespace.connect(p, etcd, 2379) == "connected", 60, f"admitted pod on {node}"
            )
        took = time.monotonic() - applied
        outcomes = {node: on_etcds_namespace.connect(pod, etcd, 2379) for node, pod in denied.items()}
        figure(
            f"NetworkPolicy (kube-router): a new allow rule admitted pods on both nodes {took:.1f}s after it was "
            f"created; pods it does not admit: {sorted(set(outcomes.values()))}"
        )
        assert all(out != "connected" for out in outcomes.values()), outcomes
    finally:
        kubectl("-n", NAMESPACE, "delete", "networkpolicy", "e2e-admit-probe", "--ignore-not-found")
    # With the extra policy gone, the admitted label admits nothing any more.
    for node, pod in admitted.items():
        wait_for(lambda p=pod: on_etcds_namespace.connect(p, etcd, 2379) != "connected", 60, f"refused again on {node}")


def test_default_storage_class_provisions(namespace, hook_image):
    """A PersistentVolumeClaim on the default StorageClass binds once a pod uses it (local-path)."""
    classes = kubectl_json("get", "storageclass")["items"]
    default = [
        c["metadata"]["name"]
        for c in classes
        if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    ]
    assert len(default) == 1, f"exactly one default StorageClass expected: {default}"
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}},
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(claim))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "writer", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "fsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "writer",
                    "image": hook_image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/sh", "-c", "echo kept > /data/file && cat /data/file"],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    wait_for(
        lambda: kubectl("-n", namespace, "get", "pod", "writer", "-o", "jsonpath={.status.phase}") == "Succeeded",
        120,
        "the pod wrote to its provisioned volume",
        lambda: kubectl("-n", namespace, "describe", "pod", "writer", check=False),
    )
    assert kubectl("-n", namespace, "get", "pvc", "data", "-o", "jsonpath={.status.phase}") == "Bound"
    assert kubectl("-n", namespace, "logs", "writer").strip() == "kept"
