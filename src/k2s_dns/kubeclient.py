"""The official Kubernetes client behind the path-based get/put that converge.py plans with.

The controller uses the well-kept client (watches, reconnects, auth); the plans
stay plain dicts so the same pure code serves the controller, the hooks (stdlib
client, kube.py) and the unit tests.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from . import kube

# path -> (API class, method suffix); the same paths kube.py builds.
_ROUTES = {
    ("api/v1", "configmaps"): (k8s.CoreV1Api, "config_map"),
    ("api/v1", "secrets"): (k8s.CoreV1Api, "secret"),
    ("api/v1", "services"): (k8s.CoreV1Api, "service"),
    ("apis/apps/v1", "deployments"): (k8s.AppsV1Api, "deployment"),
    ("apis/coordination.k8s.io/v1", "leases"): (k8s.CoordinationV1Api, "lease"),
}
# Cluster-wide lists the controller reads (the publication policy's report).
_LISTS = {
    "/apis/networking.k8s.io/v1/ingresses": (k8s.NetworkingV1Api, "list_ingress_for_all_namespaces"),
    "/api/v1/services": (k8s.CoreV1Api, "list_service_for_all_namespaces"),
    "/api/v1/namespaces": (k8s.CoreV1Api, "list_namespace"),
}
_PATH = re.compile(r"^/(api/v1|apis/[^/]+/v1)/namespaces/([^/]+)/([^/]+)/([^/]+)$")


class KubeObjects:
    """get/put/post of namespaced objects as dicts; API errors become kube.ApiError."""

    def __init__(self, api_client: k8s.ApiClient):
        self.api_client = api_client

    def _call(self, path: str, verb: str, body: dict | None = None) -> dict[str, Any]:
        match = _PATH.match(path)
        route = match and _ROUTES.get((match[1], match[3]))
        if not route:
            raise ValueError(f"no route for {path}")
        api_class, kind = route
        api = api_class(self.api_client)
        namespace, name = match[2], match[4]
        args: tuple = (name, namespace) if body is None else (name, namespace, body)
        try:
            resp = getattr(api, f"{verb}_namespaced_{kind}")(*args, _preload_content=False)
        except ApiException as err:
            raise _api_error(err) from None
        return json.loads(resp.data or b"{}")

    def get(self, path: str) -> dict[str, Any]:
        return self._call(path, "read")

    def put(self, path: str, body: dict) -> dict[str, Any]:
        return self._call(path, "replace", body)

    def list(self, path: str) -> dict[str, Any]:
        """A cluster-wide collection ({"items": [...]}) by path, e.g. /apis/networking.k8s.io/v1/ingresses."""
        if path not in _LISTS:
            raise ValueError(f"no route for {path}")
        api_class, method = _LISTS[path]
        try:
            resp = getattr(api_class(self.api_client), method)(_preload_content=False)
        except ApiException as err:
            raise _api_error(err) from None
        return json.loads(resp.data or b"{}")

    def create_event(self, namespace: str, body: dict) -> None:
        try:
            k8s.CoreV1Api(self.api_client).create_namespaced_event(namespace, body, _preload_content=False)
        except ApiException as err:
            raise _api_error(err) from None


def _api_error(err: ApiException) -> kube.ApiError:
    message = err.reason or ""
    with contextlib.suppress(ValueError, AttributeError):
        message = json.loads(err.body or "{}").get("message", message)
    return kube.ApiError(err.status or 0, message)
