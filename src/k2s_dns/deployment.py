"""Pure edits of the CoreDNS Deployment: etcd client-certificate mounts, host aliases, a preStop sleep.

The preStop sleep exists because CoreDNS closes its etcd client on SIGTERM,
before the lameduck period in which it still answers: a query reaching a
terminating pod then gets SERVFAIL for every etcd name. Sleeping first lets the
pod leave the Service endpoints while its etcd client still works.

Everything added carries a `k2s-dns-` name or is listed in an annotation, so
remove_etcd_client() takes away exactly what add_etcd_client() put there.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

CLIENT_VOLUME = "k2s-dns-etcd-client"
CA_VOLUME = "k2s-dns-etcd-ca"
CERT_DIR = "/etc/k2s-dns/etcd-client"
CA_DIR = "/etc/k2s-dns/etcd-ca"
MANAGED_ANNOTATION = "k2s-dns.io/managed"
COREFILE_ANNOTATION = "k2s-dns.io/corefile-sha256"
CERTIFICATES_ANNOTATION = "k2s-dns.io/etcd-client-sha256"
# Set by the cluster-mode certificate renewal (certs.py) to restart the pods.
ROTATED_ANNOTATION = "k2s-dns.io/certificate-rotated-at"
# Pod template annotations k2s-dns may add; remove_etcd_client() takes every one away.
POD_ANNOTATIONS = (COREFILE_ANNOTATION, CERTIFICATES_ANNOTATION, ROTATED_ANNOTATION)


@dataclass(frozen=True)
class EtcdClientMount:
    client_secret: str
    ca_secret: str
    container: str = "coredns"
    host_aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (ip, hostnames)
    pre_stop_sleep: int = 0  # seconds; 0 adds none, and a preStop hook already there is kept

    @property
    def tls_files(self) -> tuple[str, str, str]:
        return f"{CERT_DIR}/tls.crt", f"{CERT_DIR}/tls.key", f"{CA_DIR}/ca.crt"


def _container(pod_spec: dict, name: str) -> dict:
    containers = pod_spec.get("containers", [])
    for container in containers:
        if container.get("name") == name:
            return container
    if len(containers) == 1:
        return containers[0]
    raise ValueError(f"CoreDNS Deployment has no container named {name!r}")


def add_etcd_client(deploy: dict, mount: EtcdClientMount) -> dict:
    """A copy of deploy with the Secret volumes (none without TLS), their mounts and host aliases in place."""
    deploy = _without_mounts(deploy)
    pod = deploy["spec"]["template"]["spec"]
    container = _container(pod, mount.container)
    if mount.client_secret:
        pod.setdefault("volumes", []).extend(
            [
                {"name": CLIENT_VOLUME, "secret": {"secretName": mount.client_secret, "defaultMode": 0o444}},
                {"name": CA_VOLUME, "secret": {"secretName": mount.ca_secret, "defaultMode": 0o444}},
            ]
        )
        container.setdefault("volumeMounts", []).extend(
            [
                {"name": CLIENT_VOLUME, "mountPath": CERT_DIR, "readOnly": True},
                {"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True},
            ]
        )
    managed: dict = {"container": mount.container}
    if mount.pre_stop_sleep > 0 and "preStop" not in container.get("lifecycle", {}):
        container.setdefault("lifecycle", {})["preStop"] = {"sleep": {"seconds": mount.pre_stop_sleep}}
        managed["preStop"] = True
    if mount.host_aliases:
        aliases = [{"ip": ip, "hostnames": list(names)} for ip, names in mount.host_aliases]
        pod.setdefault("hostAliases", []).extend(aliases)
        managed["hostAliases"] = aliases
    deploy["metadata"].setdefault("annotations", {})[MANAGED_ANNOTATION] = json.dumps(managed, sort_keys=True)
    return deploy


def remove_etcd_client(deploy: dict) -> dict:
    """A copy of deploy without anything add_etcd_client() or set_pod_annotation() added."""
    deploy = _without_mounts(deploy)
    template = deploy["spec"]["template"]
    pod_annotations = template.get("metadata", {}).get("annotations")
    if pod_annotations is not None:
        for key in POD_ANNOTATIONS:
            pod_annotations.pop(key, None)
        if not pod_annotations:
            del template["metadata"]["annotations"]
    return deploy


def _without_mounts(deploy: dict) -> dict:
    deploy = copy.deepcopy(deploy)
    annotations = deploy["metadata"].get("annotations") or {}
    managed = json.loads(annotations.pop(MANAGED_ANNOTATION, "{}"))
    if not annotations and "annotations" in deploy["metadata"]:
        del deploy["metadata"]["annotations"]
    pod = deploy["spec"]["template"]["spec"]
    ours = {CLIENT_VOLUME, CA_VOLUME}
    _filter(pod, "volumes", lambda v: v.get("name") not in ours)
    for container in pod.get("containers", []):
        _filter(container, "volumeMounts", lambda m: m.get("name") not in ours)
    added = managed.get("hostAliases", [])
    _filter(pod, "hostAliases", lambda a: a not in added)
    if managed.get("preStop"):
        container = _container(pod, managed["container"])
        lifecycle = container.get("lifecycle", {})
        lifecycle.pop("preStop", None)
        if not lifecycle:
            container.pop("lifecycle", None)
    return deploy


def _filter(obj: dict, key: str, keep) -> None:
    if key in obj:
        obj[key] = [item for item in obj[key] if keep(item)]
        if not obj[key]:
            del obj[key]


def set_pod_annotation(deploy: dict, key: str, value: str) -> dict:
    """A copy whose pod template carries key=value (a digest), so a change of value rolls the pods.
    An empty value removes the key."""
    deploy = copy.deepcopy(deploy)
    template = deploy["spec"]["template"]
    annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
    if value:
        annotations[key] = value
    else:
        annotations.pop(key, None)
        if not annotations:
            del template["metadata"]["annotations"]
    return deploy


def same_spec(a: dict, b: dict) -> bool:
    return a.get("spec") == b.get("spec") and a["metadata"].get("annotations") == b["metadata"].get("annotations")
