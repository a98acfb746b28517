"""A read-only Kubernetes API server over plain HTTP, just enough for Helm to render against it.

`helm template --dry-run=server` (lookup answered from `objects`) and `helm install --dry-run=client`
(NOTES.txt) talk to it through a kubeconfig, so the chart's lookup paths (a Secret that is not ours, a
changed member count) and its NOTES are tested without a cluster. Discovery lists the kinds the chart
renders; GET of an object answers from `objects`, a list answers empty, anything else 404.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import yaml

# group/version -> [(resource, kind, namespaced)]
RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True),
        ("services", "Service", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("pods", "Pod", True),
        ("namespaces", "Namespace", False),
    ],
    "apps/v1": [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)],
    "batch/v1": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
    "rbac.authorization.k8s.io/v1": [
        ("roles", "Role", True),
        ("rolebindings", "RoleBinding", True),
        ("clusterroles", "ClusterRole", False),
        ("clusterrolebindings", "ClusterRoleBinding", False),
    ],
    "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy", True), ("ingresses", "Ingress", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "coordination.k8s.io/v1": [("leases", "Lease", True)],
    "apiextensions.k8s.io/v1": [("customresourcedefinitions", "CustomResourceDefinition", False)],
    "admissionregistration.k8s.io/v1": [
        ("validatingadmissionpolicies", "ValidatingAdmissionPolicy", False),
        ("validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding", False),
    ],
}
PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[^/]+)/(?P<version>[^/]+))(?:/namespaces/(?P<ns>[^/]+))?/(?P<rest>.+)$")


def object_path(obj: dict) -> str:
    """The API path of an object (apiVersion, kind, metadata.namespace, metadata.name)."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    resource = next(r for r, k, _ in RESOURCES[api_version] if k == kind)
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    namespace = obj["metadata"].get("namespace")
    middle = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{middle}/{resource}/{obj['metadata']['name']}"


class _Handler(BaseHTTPRequestHandler):
    objects: ClassVar[dict[str, dict]] = {}

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._send(
            404,
            {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404},
        )

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/version":
            self._send(200, {"major": "1", "minor": "34", "gitVersion": "v1.34.0", "platform": "linux/amd64"})
            return
        if path == "/api":
            self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
            return
        if path == "/apis":
            groups = []
            for gv in RESOURCES:
                if gv == "v1":
                    continue
                group, version = gv.split("/")
                entry = {"groupVersion": gv, "version": version}
                groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
            self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
            return
        gv = "v1" if path == "/api/v1" else path.removeprefix("/apis/")
        if gv in RESOURCES:
            resources = [
                {"name": r, "singularName": "", "namespaced": ns, "kind": k, "verbs": ["get", "list"]}
                for r, k, ns in RESOURCES[gv]
            ]
            self._send(200, {"kind": "APIResourceList", "groupVersion": gv, "resources": resources})
            return
        if path in self.objects:
            self._send(200, self.objects[path])
            return
        match = PATH.match(path)
        if match and "/" not in match["rest"]:  # a collection: the objects of it (in one or all namespaces)
            gv = "v1" if match["group"] is None else f"{match['group']}/{match['version']}"
            kind = next((k for r, k, _ in RESOURCES.get(gv, []) if r == match["rest"]), "")
            items = []
            for obj_path, obj in self.objects.items():
                m = PATH.match(obj_path)
                same = m and (m["group"], m["version"]) == (match["group"], match["version"])
                if same and m["rest"].startswith(match["rest"] + "/") and match["ns"] in (None, m["ns"]):
                    items.append(obj)
            self._send(
                200, {"kind": f"{kind}List", "apiVersion": gv, "metadata": {"resourceVersion": "1"}, "items": items}
            )
            return
        self._not_found()


@contextmanager
def serve(objects: list[dict], tmp: Path) -> Iterator[Path]:
    """Serve `objects` on a free loopback port; yields the path of a kubeconfig that points at it."""
    handler = type("Handler", (_Handler,), {"objects": {object_path(o): o for o in objects}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
                "users": [{"name": "fake", "user": {}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": "fake",
            }
        )
    )
    try:
        yield kubeconfig
    finally:
        server.shutdown()
        server.server_close()
