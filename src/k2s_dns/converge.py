"""One convergence step of CoreDNS towards the desired state: pure planning, plus the reads it needs.

Both the controller (on every watch event) and the hooks (in a loop) call
:func:`next_step` and write what it returns. The order keeps CoreDNS alive at
every moment: a Corefile never names files the Deployment does not mount.
- apply:  mounts (and a finished rollout) first, then the Corefile, then a
          restart so the pods read it now rather than 30-45 s later (reload);
- remove: the Corefile first, then the mounts.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from dataclasses import dataclass
from typing import Protocol

from . import corefile, deployment, kube
from .desired import Desired

ORIGINAL_ANNOTATION = "k2s-dns.io/original-corefile"
PATCHED_ANNOTATION = "k2s-dns.io/patched-corefile-sha256"

UPDATE_DEPLOYMENT = "update-deployment"
UPDATE_CONFIGMAP = "update-configmap"
WAIT = "wait"
CONVERGED = "converged"


class Objects(Protocol):
    """What convergence needs of an API client: read and conditionally replace by path."""

    def get(self, path: str) -> dict: ...

    def put(self, path: str, body: dict) -> dict: ...


@dataclass(frozen=True)
class Step:
    action: str  # one of the constants above
    reason: str
    path: str = ""
    body: dict | None = None

    @property
    def writes(self) -> bool:
        return self.body is not None


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def patched_configmap(
    cm: dict,
    server: str | None,
    settings: corefile.EtcdSettings,
    adopt: bool = False,
    cluster_domain: str = "cluster.local",
) -> dict | None:
    """The ConfigMap with the Corefile patched and the original kept, or None if already so."""
    cm = copy.deepcopy(cm)
    current = (cm.get("data") or {}).get("Corefile")
    if current is None:
        raise corefile.CorefileError("ConfigMap has no 'Corefile' key")
    new = corefile.patch(current, server, settings, adopt_existing=adopt, cluster_domain=cluster_domain)
    annotations = cm["metadata"].setdefault("annotations", {})
    ours_untouched = annotations.get(PATCHED_ANNOTATION) == sha256(current)
    if new == current and ours_untouched:
        return None
    if not (ours_untouched and ORIGINAL_ANNOTATION in annotations):
        # First patch, or someone (kubeadm upgrade, an admin) rewrote it since:
        # what they wrote, minus our part, is the new original.
        annotations[ORIGINAL_ANNOTATION] = corefile.unpatch(current)
    annotations[PATCHED_ANNOTATION] = sha256(new)
    cm["data"]["Corefile"] = new
    return cm


def restored_configmap(cm: dict) -> dict | None:
    """The ConfigMap as it was before apply: byte for byte if nobody edited it since,
    otherwise their edits kept and only our block and fall-through removed."""
    cm = copy.deepcopy(cm)
    current = (cm.get("data") or {}).get("Corefile", "")
    annotations = cm["metadata"].get("annotations") or {}
    original = annotations.pop(ORIGINAL_ANNOTATION, None)
    stored = annotations.pop(PATCHED_ANNOTATION, None)
    if original is None and not corefile.is_patched(current):
        return None
    if original is not None and stored == sha256(current):
        cm["data"]["Corefile"] = original
    else:
        cm["data"]["Corefile"] = corefile.unpatch(current)
    if not annotations:
        cm["metadata"].pop("annotations", None)
    return cm


@dataclass(frozen=True)
class Inputs:
    """Everything next to the two CoreDNS objects that the desired state depends on."""

    settings: corefile.EtcdSettings
    mount: deployment.EtcdClientMount
    certificates_sha256: str  # empty without TLS


def read_inputs(api: Objects, desired: Desired) -> Inputs:
    """Resolve endpoints, host aliases and the certificates' digest; raises with the object named."""
    endpoints = list(desired.endpoints)
    if desired.endpoints_secret:
        endpoints += secret_endpoints(api, desired.endpoints_secret)
    aliases = tuple(resolve_host_alias(api, spec) for spec in desired.host_aliases)
    digest = ""
    if desired.tls:
        digest = certificates_sha256(
            api, desired.namespace, [(desired.client_secret, ("tls.crt", "tls.key")), (desired.ca_secret, ("ca.crt",))]
        )
    mount = deployment.EtcdClientMount(
        desired.client_secret if desired.tls else "",
        desired.ca_secret if desired.tls else "",
        desired.container,
        aliases,
        desired.pre_stop_sleep,
    )
    settings = corefile.EtcdSettings(
        desired.zone, desired.path, tuple(endpoints), mount.tls_files if desired.tls else None, cache=desired.cache_zone
    )
    return Inputs(settings, mount, digest)


def secret_endpoints(api: Objects, ref: str) -> list[str]:
    """etcd URLs published (key ETCD_URLS) by the cluster-mode certificate Job."""
    data = _get(api, kube.secret_path(*kube.namespaced(ref)), f"Secret {ref}").get("data") or {}
    urls = base64.b64decode(data.get("ETCD_URLS", "")).decode().strip()
    if not urls:
        raise RuntimeError(f"Secret {ref} has no ETCD_URLS (the certificate Job writes it; see its log)")
    return urls.split(",")


def resolve_host_alias(api: Objects, spec: str) -> tuple[str, tuple[str, ...]]:
    """`HOSTNAME=NAMESPACE/SERVICE` -> (clusterIP, (HOSTNAME,)): CoreDNS resolves with the
    node's resolver, not with itself, so Service names need an /etc/hosts entry."""
    hostname, _, ref = spec.partition("=")
    namespace, name = kube.namespaced(ref)
    ip = _get(api, kube.service_path(namespace, name), f"Service {ref}")["spec"].get("clusterIP")
    if not ip or ip == "None":
        raise RuntimeError(f"Service {ref} has no cluster IP for host alias {hostname}")
    return ip, (hostname,)


def certificates_sha256(api: Objects, namespace: str, secrets: list[tuple[str, tuple[str, ...]]]) -> str:
    """Digest of the certificate files CoreDNS mounts; a change restarts CoreDNS (it reads them once)."""
    digest = hashlib.sha256()
    for name, keys in secrets:
        data = _get(api, kube.secret_path(namespace, name), f"Secret {namespace}/{name}").get("data") or {}
        missing = [key for key in keys if not data.get(key)]
        if missing:
            raise RuntimeError(f"Secret {namespace}/{name} has no {', '.join(missing)}")
        for key in keys:
            digest.update(f"{name}/{key}={data[key]}\n".encode())
    return digest.hexdigest()


def _get(api: Objects, path: str, what: str) -> dict:
    try:
        return api.get(path)
    except kube.ApiError as err:
        if err.status == 404:
            raise RuntimeError(f"{what} not found") from None
        raise


def plan_apply(desired: Desired, inputs: Inputs, cm: dict, deploy: dict, nodelocal: dict | None = None) -> Step:
    """The next write (or wait) that brings CoreDNS closer to serving the zone from etcd."""
    cm_path = kube.configmap_path(desired.namespace, desired.configmap)
    deploy_path = kube.deployment_path(desired.namespace, desired.deployment)
    current = (cm.get("data") or {}).get("Corefile", "")
    target_cm = patched_configmap(
        cm, desired.server_block or None, inputs.settings, desired.adopt_existing_etcd_block, desired.cluster_domain
    )
    corefile_ready = target_cm is None
    wanted = deployment.add_etcd_client(deploy, inputs.mount)
    wanted = deployment.set_pod_annotation(wanted, deployment.CERTIFICATES_ANNOTATION, inputs.certificates_sha256)
    if corefile_ready:
        # Same write as the mounts when the Corefile is already right (a replaced Deployment, new certificates).
        wanted = deployment.set_pod_annotation(wanted, deployment.COREFILE_ANNOTATION, sha256(current))
    if not deployment.same_spec(wanted, deploy):
        return Step(UPDATE_DEPLOYMENT, _deployment_change(deploy, wanted), deploy_path, wanted)
    if not corefile_ready:
        if not kube.rollout_complete(deploy):
            return Step(WAIT, "waiting for the CoreDNS rollout with the certificate mounts before editing the Corefile")
        reason = (
            "Corefile has no k2s-dns block"
            if not corefile.is_patched(current)
            else "Corefile differs from the desired k2s-dns block (settings changed or hand edit)"
        )
        return Step(UPDATE_CONFIGMAP, reason, cm_path, target_cm)
    if not kube.rollout_complete(deploy):
        return Step(WAIT, "waiting for the CoreDNS rollout")
    step = plan_nodelocal(desired, nodelocal if needs_nodelocal(desired) else None)
    if step is not None:
        return step
    return Step(CONVERGED, f"CoreDNS serves {desired.zone} from etcd")


def needs_nodelocal(desired: Desired) -> bool:
    return bool(desired.node_local_dns_configmap) and not corefile.within(desired.zone, desired.cluster_domain)


def plan_nodelocal(desired: Desired, cm: dict | None, remove: bool = False) -> Step | None:
    """The node-local-dns ConfigMap with (or without) the zone's forward to CoreDNS; None: nothing to do.
    Its `reload` plugin picks the change up: node-local-dns pods are not restarted."""
    if cm is None:
        return None
    current = (cm.get("data") or {}).get("Corefile", "")
    wanted = (
        corefile.nodelocal_unpatch(current)
        if remove
        else corefile.nodelocal_patch(current, desired.zone, desired.cluster_domain)
    )
    if wanted == current:
        return None
    cm = copy.deepcopy(cm)
    cm["data"]["Corefile"] = wanted
    what = "remove the forward of" if remove else "forward"
    path = kube.configmap_path(desired.namespace, desired.node_local_dns_configmap)
    return Step(UPDATE_CONFIGMAP, f"node-local-dns: {what} {desired.zone} to CoreDNS", path, cm)


def read_nodelocal(api: Objects, desired: Desired) -> dict | None:
    """node-local-dns's ConfigMap, or None where NodeLocal DNSCache is not installed."""
    if not desired.node_local_dns_configmap:
        return None
    try:
        return api.get(kube.configmap_path(desired.namespace, desired.node_local_dns_configmap))
    except kube.ApiError as err:
        if err.status in (403, 404):  # not there, or the chart grants nothing for it
            return None
        raise


def plan_remove(desired: Desired, cm: dict, deploy: dict, nodelocal: dict | None = None) -> Step:
    """The next write (or wait) that takes everything k2s-dns added out of CoreDNS (and node-local-dns)."""
    step = plan_nodelocal(desired, nodelocal, remove=True)
    if step is not None:
        return step
    restored = restored_configmap(cm)
    if restored is not None:
        return Step(
            UPDATE_CONFIGMAP,
            "restore the Corefile",
            kube.configmap_path(desired.namespace, desired.configmap),
            restored,
        )
    wanted = deployment.remove_etcd_client(deploy)
    if not deployment.same_spec(wanted, deploy):
        path = kube.deployment_path(desired.namespace, desired.deployment)
        return Step(UPDATE_DEPLOYMENT, "remove the k2s-dns mounts, host aliases and annotations", path, wanted)
    if not kube.rollout_complete(deploy):
        return Step(WAIT, "waiting for the CoreDNS rollout")
    return Step(CONVERGED, "CoreDNS has nothing of k2s-dns")


def _deployment_change(before: dict, after: dict) -> str:
    pod_before, pod_after = before["spec"]["template"], after["spec"]["template"]
    volumes = {v.get("name") for v in pod_before["spec"].get("volumes", [])}
    if deployment.CLIENT_VOLUME not in volumes and deployment.CLIENT_VOLUME in {
        v.get("name") for v in pod_after["spec"].get("volumes", [])
    }:
        return "certificate mounts missing from the CoreDNS Deployment (new install, or it was replaced)"
    notes_before = pod_before.get("metadata", {}).get("annotations", {})
    notes_after = pod_after.get("metadata", {}).get("annotations", {})
    for key, what in (
        (deployment.CERTIFICATES_ANNOTATION, "etcd client certificates changed: restart CoreDNS"),
        (deployment.COREFILE_ANNOTATION, "Corefile changed: restart CoreDNS instead of waiting for reload"),
    ):
        if notes_before.get(key) != notes_after.get(key):
            return what
    return "CoreDNS Deployment differs from the desired mounts, host aliases or preStop hook"


def next_step(api: Objects, desired: Desired, remove: bool = False) -> Step:
    cm = api.get(kube.configmap_path(desired.namespace, desired.configmap))
    deploy = api.get(kube.deployment_path(desired.namespace, desired.deployment))
    nodelocal = read_nodelocal(api, desired)
    if remove:
        return plan_remove(desired, cm, deploy, nodelocal)
    return plan_apply(desired, read_inputs(api, desired), cm, deploy, nodelocal)


def execute(api: Objects, step: Step) -> None:
    """Write the step's object; the read resourceVersion makes a concurrent change fail with 409."""
    if step.body is not None:
        api.put(step.path, step.body)
