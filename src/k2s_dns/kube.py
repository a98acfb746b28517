"""A minimal Kubernetes API client (stdlib only) for the in-cluster hook Jobs.

The hook image stays small and has no third-party dependency to keep patched.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class Client:
    def __init__(self, server: str, token: str, ca_file: str | None):
        self.server = server.rstrip("/")
        self.token = token
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()

    @classmethod
    def in_cluster(cls) -> Client:
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if ":" in host:
            host = f"[{host}]"
        with open(f"{SA_DIR}/token") as f:
            token = f.read().strip()
        return cls(f"https://{host}:{port}", token, f"{SA_DIR}/ca.crt")

    def request(
        self, method: str, path: str, body: dict | None = None, content_type: str = "application/json"
    ) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=30) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")
            with contextlib.suppress(ValueError):
                detail = json.loads(detail).get("message", detail)
            raise ApiError(err.code, detail) from None

    def get(self, path: str) -> dict[str, Any]:
        return self.request("GET", path)

    def put(self, path: str, body: dict) -> dict[str, Any]:
        return self.request("PUT", path, body)


def configmap_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


def deployment_path(namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


def service_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/services/{name}"


def secret_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets/{name}"


def lease_path(namespace: str, name: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"


def namespaced(spec: str) -> tuple[str, str]:
    """`NAMESPACE/NAME` -> (namespace, name); usable as an argparse type."""
    namespace, _, name = spec.partition("/")
    if not namespace or not name:
        raise argparse.ArgumentTypeError(f"expected NAMESPACE/NAME, got {spec!r}")
    return namespace, name


def update_with_retry(
    client: Client, path: str, change: Callable[[dict], dict | None], attempts: int = 5
) -> dict | None:
    """GET, change, PUT with the read resourceVersion; on a 409 conflict start over.

    `change` returns the new object, or None when nothing needs writing.
    """
    for attempt in range(attempts):
        current = client.get(path)
        desired = change(current)
        if desired is None:
            return None
        try:
            return client.put(path, desired)
        except ApiError as err:
            if err.status != 409 or attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    return None


def rollout_complete(deploy: dict) -> bool:
    spec, status = deploy.get("spec", {}), deploy.get("status", {})
    want = spec.get("replicas", 1)
    return (
        status.get("observedGeneration", 0) >= deploy["metadata"].get("generation", 0)
        and status.get("updatedReplicas", 0) == want
        and status.get("replicas", 0) == want
        and status.get("availableReplicas", 0) == want
    )


def wait_for_rollout(
    client: Client,
    path: str,
    timeout: float,
    interval: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    deadline = clock() + timeout
    while True:
        deploy = client.get(path)
        if rollout_complete(deploy):
            return
        if clock() >= deadline:
            raise TimeoutError(f"rollout of {path} not complete after {timeout:.0f}s: status {deploy.get('status')}")
        sleep(interval)
