"""The nearest peer, k8s_gateway, measured in the same run and the same way as the chart.

k8s_gateway (github.com/k8s-gateway/k8s_gateway) is a CoreDNS build with a plugin that answers Ingress (and
Service, Gateway API) hosts from informers; it runs as its own DNS server. The bench deploys it alone (the
chart uninstalled), authoritative for the same zone and with the chart's record TTL, and asks it directly
through a NodePort, as the chart's rows ask the cluster's CoreDNS: create -> resolvable, address change and
delete latency with the chart's code (measure.create_latency, update_delete_latency), then dnsperf on one
Ingress name at the chart rows' load. In a real cluster it also needs a forward from the cluster's CoreDNS
(one more hop), which is not measured here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from tests.e2e.helpers import ZONE, Resolver, create_namespace, kubectl

from bench import measure

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "k2s-dns-bench-peer"
NAME = "k8s-gateway"
PORT = 1053  # inside the pod: no capability needed for port 53 (the image runs as 65532)
NODEPORT = int(os.environ.get("BENCH_PEER_NODEPORT", "30054"))  # tests/cluster/kind-config.yaml maps it
RECORD_TTL = 5  # the chart's externalDNS.recordTTL default
COREFILE = f""".:{PORT} {{
    errors
    health :8080
    ready :8181
    k8s_gateway {ZONE} {{
        resources Ingress
        ttl {RECORD_TTL}
    }}
}}
"""


def version() -> str:
    for line in (REPO / "versions.env").read_text().splitlines():
        if line.startswith("K8S_GATEWAY_VERSION="):
            return line.split("=", 1)[1].strip()
    raise SystemExit("versions.env has no K8S_GATEWAY_VERSION")


def image() -> str:
    return f"ghcr.io/k8s-gateway/k8s_gateway:{version()}"


def manifests(ref: str) -> list[dict]:
    """What k8s_gateway's install-clusterwide.yml and README ask for, in a namespace of its own: read access to
    Ingresses, Services and Namespaces, and `get` on CRDs (it looks up the Gateway API and DNSEndpoint CRDs at
    start). Listens on PORT; a NodePort Service for the bench."""
    labels = {"app.kubernetes.io/name": NAME}
    meta = {"name": NAME, "namespace": NAMESPACE, "labels": labels}
    rules = [
        {"apiGroups": [""], "resources": ["services", "namespaces"], "verbs": ["list", "watch"]},
        {"apiGroups": ["extensions", "networking.k8s.io"], "resources": ["ingresses"], "verbs": ["list", "watch"]},
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["get", "list", "watch"],
        },
    ]
    container = {
        "name": NAME,
        "image": ref,
        "imagePullPolicy": "IfNotPresent",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": PORT, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "100m", "memory": "70Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": f"{NAMESPACE}-{NAME}", "labels": labels},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{NAMESPACE}-{NAME}", "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{NAMESPACE}-{NAME}"},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": COREFILE}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": NAME,
                        "containers": [container],
                        "volumes": [{"name": "config", "configMap": {"name": NAME}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "type": "NodePort",
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": PORT, "protocol": "UDP", "nodePort": NODEPORT},
                    {"name": "dns-tcp", "port": 53, "targetPort": PORT, "protocol": "TCP", "nodePort": NODEPORT},
                ],
            },
        },
    ]


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=timeout)


def ensure_image(ref: str) -> None:
    """On the kind cluster: the image on the node, built (images/k8s-gateway/build.sh, air-gapped) and loaded
    if missing. On any other cluster the nodes must be able to pull it."""
    if shutil.which("docker") is None or _run(["docker", "exec", measure.NODE, "true"], 30).returncode != 0:
        print(f"   not the kind cluster ({measure.NODE}): the nodes must be able to pull {ref}", flush=True)
        return
    if _run(["docker", "exec", measure.NODE, "crictl", "inspecti", ref], 60).returncode == 0:
        print(f"   {ref} is on the node", flush=True)
        return
    if _run(["docker", "image", "inspect", ref], 30).returncode != 0:
        print(f"   building {ref} (images/k8s-gateway/build.sh, a few minutes the first time)", flush=True)
        start = time.monotonic()
        subprocess.run([str(REPO / "images/k8s-gateway/build.sh")], check=True, timeout=3600)
        print(f"   built in {time.monotonic() - start:.0f} s", flush=True)
    cluster = measure.NODE.removesuffix("-control-plane")
    print(f"   kind load docker-image --name {cluster} {ref}", flush=True)
    result = _run(["kind", "load", "docker-image", "--name", cluster, ref], 600)
    if result.returncode != 0:
        raise RuntimeError(f"kind load docker-image {ref} failed: {result.stderr.strip()}")


def deploy(ref: str) -> None:
    print(f"   deploying {ref} in namespace {NAMESPACE} (NodePort {NODEPORT})", flush=True)
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests(ref)}))
    kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{NAME}", "--timeout=180s")


def remove() -> None:
    print(f"   removing k8s_gateway (namespace {NAMESPACE})", flush=True)
    kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=180s", check=False)
    for kind in ("clusterrolebinding", "clusterrole"):
        kubectl("delete", kind, f"{NAMESPACE}-{NAME}", "--ignore-not-found", check=False)


def _answers(resolver: Resolver, timeout: float) -> bool:
    """Anything but a transport error within timeout (SERVFAIL before its informers synced counts: the path
    works)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not resolver.query(f"probe.{ZONE}", timeout=1.0).rcode.startswith("ERROR"):
            return True
        time.sleep(0.5)
    return False


def connect() -> tuple[Resolver, str]:
    """The peer as seen from this machine: the NodePort on loopback (kind-config.yaml maps it), else on the
    node's address (a cluster created before that mapping; from the host, not through the loopback mapping)."""
    loopback = Resolver("127.0.0.1", NODEPORT)
    if _answers(loopback, 20):
        return loopback, f"NodePort {NODEPORT} on loopback"
    node_ip = kubectl(
        "get", "nodes", "-o", "jsonpath={.items[0].status.addresses[?(@.type=='InternalIP')].address}"
    ).split()[0]
    direct = Resolver(node_ip, NODEPORT)
    print(
        f"   WARNING: 127.0.0.1:{NODEPORT} does not answer (cluster created before kind-config.yaml mapped it?);"
        f" asking {node_ip}:{NODEPORT} instead",
        flush=True,
    )
    if _answers(direct, 20):
        return direct, f"NodePort {NODEPORT} on the node address (no loopback mapping)"
    raise TimeoutError(f"bench: k8s_gateway answers neither on 127.0.0.1:{NODEPORT} nor on {node_ip}:{NODEPORT}")


def run(scale: dict) -> dict:
    ref = image()
    ensure_image(ref)
    deploy(ref)
    api = measure.networking()
    ns = f"bench-peer-{uuid.uuid4().hex[:6]}"
    try:
        resolver, path = connect()
        print(f"   asking k8s_gateway through {path}; waiting for its informers (NXDOMAIN, at most 120 s)", flush=True)
        measure._wait(lambda: resolver.query(f"probe.{ZONE}").rcode == "NXDOMAIN", 120, "k8s_gateway synced", 0.5)
        create_namespace(ns)
        result: dict = {"name": "k8s_gateway", "version": version(), "path": path, "replicas": 1}
        result["footprint"] = {"0": measure.footprint({"k8s_gateway": (NAME, NAME)})}
        fresh = measure.create_latency(
            api, resolver, ns, scale["samples"], prequery=False, tag="peer", what="peer: create (never queried)"
        )
        result["create_fresh"] = {**measure.percentiles(fresh), "samples": sorted(round(v, 3) for v in fresh)}
        print(f"   peer create p50 {result['create_fresh'].get('p50')} s, p95 {result['create_fresh'].get('p95')} s")
        updated, deleted = measure.update_delete_latency(api, resolver, ns, max(5, scale["samples"] // 5), "peer")
        result["update"] = measure.percentiles(updated)
        result["delete"] = measure.percentiles(deleted)
        if shutil.which("dnsperf") is None or resolver.tcp:
            result["throughput"] = {"skipped": "dnsperf not installed or no UDP path to k8s_gateway"}
        else:
            name = f"peer-perf.{ZONE}"
            api.create_namespaced_ingress(ns, measure.ingress("peer-perf", name))
            measure.set_address(api, ns, "peer-perf", "198.18.200.2")
            measure.resolvable(resolver, name, "198.18.200.2")
            result["throughput"] = measure.dnsperf(resolver, name, scale["dnsperf_seconds"], "peer: one Ingress name")
            result["dnsperf_load"] = measure.dnsperf_load(scale["dnsperf_seconds"])
        count = len(kubectl("-n", ns, "get", "ingress", "-o", "name").split())
        result["footprint"][str(count)] = measure.footprint({"k8s_gateway": (NAME, NAME)})
        return result
    finally:
        kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=300s", check=False)
        remove()
