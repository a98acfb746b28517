"""What doctor reads from the cluster, as plain dicts: the I/O half of doctor (checks.py is the pure half).

Kube wraps the official client with the user's kubeconfig; gather_* turn its answers into the facts each
check takes. A FakeKube with the same methods (tests/unit/doctor_fakes.py) drives the same gatherers.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import time
from typing import Any

from . import checks
from .checks import Names

LOG_WINDOW = 300  # seconds of ExternalDNS and CoreDNS logs read
EXEC_TIMEOUT = 20
ROUTE_PLURALS = {"HTTPRoute": "httproutes", "GRPCRoute": "grpcroutes", "TLSRoute": "tlsroutes"}
GATEWAY_GROUP = "gateway.networking.k8s.io"
EXTERNALDNS_GROUP = "externaldns.k8s.io"


class KubeError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


class Kube:
    """Reads through the official client (kubeconfig, or in-cluster); every method returns plain dicts."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None, timeout: float = 15):
        from kubernetes import client, config

        try:  # a client of its own: the process-wide default configuration stays untouched
            self.api = config.new_client_from_config(config_file=kubeconfig, context=context, persist_config=False)
        except Exception:
            if kubeconfig or context or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                raise
            config.load_incluster_config()  # run inside a pod
            self.api = client.ApiClient()
        self._client = client
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.networking = client.NetworkingV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.timeout = timeout
        self._groups: dict[str, str] | None = None

    def _call(self, method, *args, missing_ok: bool = True, **kwargs) -> Any:
        from kubernetes.client.rest import ApiException

        try:
            resp = method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
        except ApiException as err:
            if err.status == 404 and missing_ok:
                return None
            message = err.reason or ""
            with contextlib.suppress(ValueError, AttributeError):
                message = json.loads(err.body or "{}").get("message", message)
            raise KubeError(err.status or 0, message) from None
        except Exception as err:  # connection refused, TLS, timeouts
            raise KubeError(0, f"{type(err).__name__}: {err}") from None
        data = resp.data
        return json.loads(data) if data else {}

    def _items(self, method, *args, **kwargs) -> list[dict]:
        return (self._call(method, *args, missing_ok=False, **kwargs) or {}).get("items", [])

    # single objects (None: not found)
    def configmap(self, ns: str, name: str) -> dict | None:
        return self._call(self.core.read_namespaced_config_map, name, ns)

    def secret(self, ns: str, name: str) -> dict | None:
        return self._call(self.core.read_namespaced_secret, name, ns)

    def service(self, ns: str, name: str) -> dict | None:
        return self._call(self.core.read_namespaced_service, name, ns)

    def namespace(self, name: str) -> dict | None:
        return self._call(self.core.read_namespace, name)

    def deployment(self, ns: str, name: str) -> dict | None:
        return self._call(self.apps.read_namespaced_deployment, name, ns)

    def statefulset(self, ns: str, name: str) -> dict | None:
        return self._call(self.apps.read_namespaced_stateful_set, name, ns)

    # lists
    def pods(self, ns: str, selector: str) -> list[dict]:
        return self._items(self.core.list_namespaced_pod, ns, label_selector=selector)

    def secrets(self, ns: str, selector: str) -> list[dict]:
        return self._items(self.core.list_namespaced_secret, ns, label_selector=selector)

    def services(self, ns: str | None = None) -> list[dict]:
        if ns:
            return self._items(self.core.list_namespaced_service, ns)
        return self._items(self.core.list_service_for_all_namespaces)

    def ingresses(self) -> list[dict]:
        return self._items(self.networking.list_ingress_for_all_namespaces)

    def network_policies(self, ns: str) -> list[dict]:
        return self._items(self.networking.list_namespaced_network_policy, ns)

    def _preferred(self, group: str) -> str | None:
        if self._groups is None:
            found = self._call(self._client.ApisApi(self.api).get_api_versions, missing_ok=False) or {}
            self._groups = {
                g["name"]: (g.get("preferredVersion") or {}).get("version", "") for g in found.get("groups", [])
            }
        return self._groups.get(group)

    def custom_objects(self, group: str, plural: str) -> list[dict] | None:
        """Every object of a custom resource; None when the API (the CRD) is not installed."""
        version = self._preferred(group)
        if not version:
            return None
        found = self._call(self.custom.list_cluster_custom_object, group, version, plural)
        return None if found is None else found.get("items", [])

    def pod_log(self, ns: str, pod: str, container: str | None, since: int) -> str:
        kwargs = {"container": container} if container else {}
        try:
            resp = self.core.read_namespaced_pod_log(
                pod,
                ns,
                since_seconds=since,
                timestamps=True,
                tail_lines=2000,
                _preload_content=False,
                _request_timeout=self.timeout,
                **kwargs,
            )
        except Exception:
            return ""
        return resp.data.decode(errors="replace")

    def exec(
        self, ns: str, pod: str, container: str, command: list[str], timeout: float = EXEC_TIMEOUT
    ) -> tuple[int, str, str]:
        """Run command in the container (the API's exec, as kubectl exec): (exit code, stdout, stderr)."""
        from kubernetes.stream import stream

        # stream() patches the client it is given: a second one with the same configuration
        core = self._client.CoreV1Api(self._client.ApiClient(self.api.configuration))
        try:
            ws = stream(
                core.connect_get_namespaced_pod_exec,
                pod,
                ns,
                container=container,
                command=command,
                stdin=False,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
            )
        except Exception as err:
            raise KubeError(getattr(err, "status", 0) or 0, f"exec into {ns}/{pod}: {err}") from None
        out, err_out = [], []
        deadline = time.monotonic() + timeout
        try:
            while ws.is_open() and time.monotonic() < deadline:
                ws.update(timeout=1)
                if ws.peek_stdout():
                    out.append(ws.read_stdout())
                if ws.peek_stderr():
                    err_out.append(ws.read_stderr())
            timed_out = ws.is_open()
            if ws.peek_stdout():
                out.append(ws.read_stdout())
            if ws.peek_stderr():
                err_out.append(ws.read_stderr())
            try:
                code = ws.returncode if not timed_out else None
            except (KeyError, IndexError, ValueError, TypeError):  # a failure without an exit code
                code = 1
        finally:
            ws.close()
        if timed_out:
            raise KubeError(0, f"exec into {ns}/{pod} took longer than {timeout:g}s")
        return (code if code is not None else 0), "".join(out), "".join(err_out)


# ---------------------------------------------------------------------------------------------- gatherers


def _decode_helm_release(secret: dict) -> dict:
    raw = base64.b64decode(secret["data"]["release"])
    raw = base64.b64decode(raw)
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    release = json.loads(raw)
    config = release.get("config") or {}
    defaults = (release.get("chart") or {}).get("values") or {}

    def hook_image(values: dict) -> dict:
        return ((values.get("coredns") or {}).get("patch") or {}).get("image") or {}

    return {
        "status": (release.get("info") or {}).get("status", ""),
        "revision": release.get("version"),
        "chart": ((release.get("chart") or {}).get("metadata") or {}).get("version", ""),
        "image": {
            "overrides": hook_image(config),
            "defaults": hook_image(defaults),
            "global_registry": (config.get("global") or {}).get("imageRegistry", ""),
        },
    }


def helm_release(kube, names: Names) -> dict | None:
    """The newest revision of the Helm release (status, chart version); None if not readable or absent."""
    try:
        secrets = kube.secrets(names.namespace, f"owner=helm,name={names.release}")
    except KubeError:
        return None
    if not secrets:
        return None
    newest = max(secrets, key=lambda s: int(s.get("metadata", {}).get("labels", {}).get("version", "0")))
    try:
        return _decode_helm_release(newest)
    except (KeyError, ValueError, OSError):
        return {"status": newest.get("metadata", {}).get("labels", {}).get("status", "")}


def gather_release(kube, names: Names) -> dict:
    facts = {
        "helm": helm_release(kube, names),
        "desired_cm": kube.configmap(names.namespace, names.desired),
        "external_dns": kube.deployment(names.namespace, names.external_dns),
        "controller": kube.deployment(names.namespace, names.controller),
        "etcd": kube.statefulset(names.namespace, names.etcd),
        "status_cm": kube.configmap(names.namespace, names.status),
        "pods": kube.pods(names.namespace, f"app.kubernetes.io/instance={names.release}"),
    }
    # A stuck uninstall: whether CoreDNS still carries anything of the release decides the way out.
    if (facts["helm"] or {}).get("status") == "uninstalling" and facts["desired_cm"] is not None:
        try:
            desired = checks.desired_of((facts["desired_cm"].get("data") or {}).get("desired.json"))
            cm = kube.configmap(desired.namespace, desired.configmap)
            facts["coredns"] = {
                "corefile": ((cm or {}).get("data") or {}).get("Corefile"),
                "deployment": kube.deployment(desired.namespace, desired.deployment),
            }
        except (checks.DesiredError, KubeError):
            pass  # unknown: the check then gives the general advice
    return facts


def gather_source(kube, host: str, zone: str, settings: dict) -> dict:
    routes = {kind: kube.custom_objects(GATEWAY_GROUP, plural) for kind, plural in ROUTE_PLURALS.items()}
    gateways = kube.custom_objects(GATEWAY_GROUP, "gateways") if any(v is not None for v in routes.values()) else []
    return {
        "host": host,
        "zone": zone,
        "settings": settings,
        "ingresses": kube.ingresses(),
        "services": kube.services(),
        "routes": routes,
        "gateways": gateways or [],
        "dnsendpoints": kube.custom_objects(EXTERNALDNS_GROUP, "dnsendpoints"),
    }


def namespace_labels(kube, namespaces: set[str]) -> dict[str, dict]:
    """Labels of each namespace (the publication policy's trust label)."""
    out = {}
    for space in sorted(namespaces):
        found = kube.namespace(space)
        out[space] = ((found or {}).get("metadata") or {}).get("labels") or {}
    return out


def gather_external_dns(kube, names: Names, deploy: dict | None, host: str | None, now: float) -> dict:
    pods = kube.pods(
        names.namespace, f"app.kubernetes.io/instance={names.release},app.kubernetes.io/component=external-dns"
    )
    running = [p for p in pods if p.get("status", {}).get("phase") == "Running"]
    log = kube.pod_log(names.namespace, running[0]["metadata"]["name"], "external-dns", LOG_WINDOW) if running else ""
    return {
        "deployment": deploy,
        "pods": pods,
        "log": log,
        "now": now,
        "settings": checks.external_dns_settings(checks.container_args(deploy)),
        "host": host,
    }


def etcd_command(prefix: str, tls: bool, password: str | None) -> list[str]:
    """etcdctl inside the bundled etcd's container, as tests/e2e/helpers.py etcdctl() runs it."""
    cmd = ["etcdctl", f"--endpoints={'https' if tls else 'http'}://127.0.0.1:2379"]
    if tls:
        cmd += ["--cacert=/etc/etcd/tls/ca.crt", "--cert=/etc/etcd/tls/tls.crt", "--key=/etc/etcd/tls/tls.key"]
    if password:
        cmd.append(f"--user=root:{password}")
    return [*cmd, "get", "--prefix", prefix, "-w", "json"]


def parse_etcdctl_json(text: str) -> list[dict]:
    found = json.loads(text or "{}")
    return [
        {
            "key": base64.b64decode(kv["key"]).decode(errors="replace"),
            "value": base64.b64decode(kv.get("value", "")).decode(errors="replace"),
        }
        for kv in found.get("kvs") or []
    ]


def root_secret_name(names: Names, statefulset: dict | None) -> str:
    """The Secret the auth sidecar mounts as `root` (etcd.bundled.existingSecrets.rootPassword), else the chart's."""
    volumes = ((statefulset or {}).get("spec", {}).get("template", {}).get("spec", {})).get("volumes", [])
    for v in volumes:
        if v.get("name") == "root" and (v.get("secret") or {}).get("secretName"):
            return v["secret"]["secretName"]
    return names.etcd_root


def gather_etcd(kube, names: Names, desired, mode: str, statefulset: dict | None, host: str | None) -> dict:
    facts: dict = {"mode": mode, "prefix": desired.path, "zone": desired.zone, "host": host, "kvs": None, "error": None}
    if mode != "bundled":
        return facts
    password = None
    secret = kube.secret(names.namespace, root_secret_name(names, statefulset))
    if secret and (secret.get("data") or {}).get("password"):
        password = base64.b64decode(secret["data"]["password"]).decode()
    zone_path = checks.key_path(desired.zone, desired.path)
    try:
        code, out, err = kube.exec(
            names.namespace, f"{names.etcd}-0", "etcd", etcd_command(zone_path, desired.tls, password)
        )
    except KubeError as exc:
        facts["error"] = str(exc)
        return facts
    if code != 0:
        facts["error"] = (err or out).strip().splitlines()[-1] if (err or out).strip() else f"etcdctl exited {code}"
        return facts
    try:
        kvs = parse_etcdctl_json(out)
    except (ValueError, KeyError) as exc:
        facts["error"] = f"unreadable etcdctl output: {exc}"
        return facts
    facts["kvs"] = [kv for kv in kvs if kv["key"] == zone_path or kv["key"].startswith(zone_path + "/")]
    return facts


def gather_coredns(
    kube, names: Names, desired, desired_raw: dict, mode: str, controller: dict | None, now: float
) -> dict:
    ns = desired.namespace
    cm = kube.configmap(ns, desired.configmap)
    deploy = kube.deployment(ns, desired.deployment)
    selector = ",".join(
        f"{k}={v}"
        for k, v in (
            (deploy or {}).get("spec", {}).get("selector", {}).get("matchLabels") or {"k8s-app": "kube-dns"}
        ).items()
    )
    pods = kube.pods(ns, selector)
    logs = {
        p["metadata"]["name"]: kube.pod_log(ns, p["metadata"]["name"], desired.container, LOG_WINDOW)
        for p in pods
        if p.get("status", {}).get("phase") == "Running"
    }
    secrets: dict = {}
    if desired.tls:
        for name in (desired.client_secret, desired.ca_secret):
            try:
                secrets[name] = kube.secret(ns, name) is not None
            except KubeError:
                secrets[name] = None  # not allowed to look: unknown
    facts = {
        "desired": desired_raw,
        "mode": mode,
        "corefile": ((cm or {}).get("data") or {}).get("Corefile"),
        "deployment": deploy,
        "pods": pods,
        "logs": logs,
        "controller": controller,
        "secrets": secrets,
        "now": now,
        "etcd_service": None,
        "etcd_pods": [],
        "policies": [],
        "namespace_labels": {},
    }
    if mode == "bundled":
        facts["etcd_service"] = kube.service(names.namespace, names.etcd)
        facts["etcd_pods"] = kube.pods(
            names.namespace, f"app.kubernetes.io/instance={names.release},app.kubernetes.io/component=etcd"
        )
        policies = []
        for space in {ns, names.namespace}:
            with contextlib.suppress(KubeError):
                policies += kube.network_policies(space)
            found = kube.namespace(space)
            facts["namespace_labels"][space] = ((found or {}).get("metadata") or {}).get("labels") or {}
        facts["policies"] = policies
    return facts


def dns_servers(kube, desired, pods: list[dict]) -> list[dict]:
    """Where to ask: every CoreDNS pod, and the cluster DNS Service (kube-dns, or one selecting CoreDNS)."""
    servers = [
        {"server": p["status"]["podIP"], "port": 53, "what": f"pod {p['metadata']['name']}"}
        for p in pods
        if (p.get("status") or {}).get("podIP")
    ]
    service = kube.service(desired.namespace, "kube-dns")
    if service is None:
        labels = (pods[0].get("metadata", {}).get("labels") or {}) if pods else {}
        for svc in kube.services(desired.namespace):
            selector = (svc.get("spec") or {}).get("selector") or {}
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                service = svc
                break
    ip = ((service or {}).get("spec") or {}).get("clusterIP")
    if ip and ip != "None":
        servers.append({"server": ip, "port": 53, "what": f"Service {service['metadata']['name']}"})
    return servers
