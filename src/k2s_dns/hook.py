"""Helm hook entry point: patch CoreDNS for k2s-dns (post-install/upgrade) or undo it (pre-delete).

    python -m k2s_dns.hook apply  --zone cluster.local --endpoint https://... [...]
    python -m k2s_dns.hook remove [...]

Order matters so that no CoreDNS pod can ever start with a Corefile whose
certificate files are not mounted: apply mounts first, then edits the
Corefile; remove restores the Corefile first, then unmounts.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys

from . import corefile, deployment, kube

ORIGINAL_ANNOTATION = "k2s-dns.io/original-corefile"
PATCHED_ANNOTATION = "k2s-dns.io/patched-corefile-sha256"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def patched_configmap(cm: dict, server: str, settings: corefile.EtcdSettings) -> dict | None:
    """The ConfigMap with the Corefile patched and the original kept, or None if already so."""
    current = (cm.get("data") or {}).get("Corefile")
    if current is None:
        raise corefile.CorefileError("ConfigMap has no 'Corefile' key")
    new = corefile.patch(current, server, settings)
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


def resolve_host_aliases(client: kube.Client, specs: list[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`HOSTNAME=NAMESPACE/SERVICE` -> (clusterIP, (HOSTNAME,)): CoreDNS resolves with the
    node's resolver, not with itself, so Service names need an /etc/hosts entry."""
    aliases = []
    for spec in specs:
        hostname, _, ref = spec.partition("=")
        namespace, name = kube.namespaced(ref)
        ip = client.get(kube.service_path(namespace, name))["spec"].get("clusterIP")
        if not ip or ip == "None":
            raise RuntimeError(f"Service {ref} has no cluster IP for host alias {hostname}")
        aliases.append((ip, (hostname,)))
    return tuple(aliases)


def secret_endpoints(client: kube.Client, ref: str) -> list[str]:
    """etcd URLs published (key ETCD_URLS) by the cluster-mode certificate Job."""
    data = client.get(kube.secret_path(*kube.namespaced(ref))).get("data") or {}
    urls = base64.b64decode(data.get("ETCD_URLS", "")).decode().strip()
    if not urls:
        raise RuntimeError(f"Secret {ref} has no ETCD_URLS")
    return urls.split(",")


def apply(client: kube.Client, args: argparse.Namespace) -> None:
    if args.endpoints_secret:
        args.endpoint = args.endpoint + secret_endpoints(client, args.endpoints_secret)
    cm_path = kube.configmap_path(args.namespace, args.configmap)
    deploy_path = kube.deployment_path(args.namespace, args.deployment)
    mount = deployment.EtcdClientMount(
        args.client_secret,
        args.ca_secret,
        args.container,
        resolve_host_aliases(client, args.host_alias),
        args.pre_stop_sleep,
    )
    settings = corefile.EtcdSettings(args.zone, args.path, tuple(args.endpoint), mount.tls_files if args.tls else None)
    # Validate before touching anything: an unparsable Corefile changes nothing.
    corefile.patch(client.get(cm_path)["data"].get("Corefile", ""), args.server_block, settings)

    def mount_certs(deploy: dict) -> dict | None:
        desired = deployment.add_etcd_client(deploy, mount)
        return None if deployment.same_spec(desired, deploy) else desired

    if kube.update_with_retry(client, deploy_path, mount_certs):
        print(f"mounted etcd client certificates into {args.namespace}/{args.deployment}")
        kube.wait_for_rollout(client, deploy_path, args.timeout)
    if kube.update_with_retry(client, cm_path, lambda cm: patched_configmap(cm, args.server_block, settings)):
        print(f"patched Corefile of {args.namespace}/{args.configmap} (server block {args.server_block})")
    digest = sha256(client.get(cm_path)["data"]["Corefile"])

    def roll(deploy: dict) -> dict | None:
        desired = deployment.set_corefile_hash(deploy, digest)
        return None if deployment.same_spec(desired, deploy) else desired

    # Restart instead of waiting 30-45 s for the reload plugin (if it is configured at all).
    if kube.update_with_retry(client, deploy_path, roll):
        kube.wait_for_rollout(client, deploy_path, args.timeout)
    print("CoreDNS serves zone", args.zone, "from etcd")


def remove(client: kube.Client, args: argparse.Namespace) -> None:
    cm_path = kube.configmap_path(args.namespace, args.configmap)
    deploy_path = kube.deployment_path(args.namespace, args.deployment)
    if kube.update_with_retry(client, cm_path, restored_configmap):
        print(f"restored Corefile of {args.namespace}/{args.configmap}")

    def unmount(deploy: dict) -> dict | None:
        desired = deployment.remove_etcd_client(deploy)
        return None if deployment.same_spec(desired, deploy) else desired

    if kube.update_with_retry(client, deploy_path, unmount):
        print(f"removed k2s-dns mounts from {args.namespace}/{args.deployment}")
        kube.wait_for_rollout(client, deploy_path, args.timeout)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m k2s_dns.hook", description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["apply", "remove"])
    p.add_argument("--namespace", default="kube-system")
    p.add_argument("--configmap", default="coredns")
    p.add_argument("--deployment", default="coredns")
    p.add_argument("--container", default="coredns")
    p.add_argument("--server-block", default=".:53")
    p.add_argument("--zone", default="cluster.local")
    p.add_argument("--path", default="/skydns")
    p.add_argument("--endpoint", action="append", default=[])
    p.add_argument("--endpoints-secret", metavar="NAMESPACE/NAME", help="read the etcd URLs from its ETCD_URLS key")
    p.add_argument("--tls", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--client-secret", default="etcd-client-for-core-dns")
    p.add_argument("--ca-secret", default="etcd-ca")
    p.add_argument("--host-alias", action="append", default=[], metavar="HOSTNAME=NAMESPACE/SERVICE")
    p.add_argument("--pre-stop-sleep", type=int, default=5, metavar="SECONDS", help="0: add no preStop hook")
    p.add_argument("--timeout", type=float, default=180)
    return p


def main(argv: list[str] | None = None, client: kube.Client | None = None) -> int:
    args = parser().parse_args(argv)
    if args.action == "apply" and not (args.endpoint or args.endpoints_secret):
        print("error: apply needs --endpoint or --endpoints-secret", file=sys.stderr)
        return 2
    try:
        client = client or kube.Client.in_cluster()
        (apply if args.action == "apply" else remove)(client, args)
    except corefile.CorefileError as err:
        print(f"error: refusing to change the Corefile: {err}", file=sys.stderr)
        return 1
    except (kube.ApiError, TimeoutError, RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
