"""Uninstall in cluster mode: delete the records this release owns from the cluster etcd, then its Secrets.

    python -m k2s_dns.etcd_cleanup --prefix /skydns --owner k2s-dns --release k2s-dns/k2s-dns \\
        --endpoints-file /etc/k2s-dns/endpoints/ETCD_URLS --cert tls.crt --key tls.key --ca ca.crt \\
        --delete-secret kube-system/etcd-ca ...

Talks to etcd's JSON gateway (/v3/kv/range, /v3/kv/deleterange) with the
client certificate, so the hook image needs no etcd library. A record is this
release's only if its JSON `owner` field (ExternalDNS --coredns-strictly-owned)
equals --owner: nothing else under the prefix, and nothing outside it, is touched.

Pre-delete hooks run while the release's ExternalDNS still runs, and it would
write the records straight back (it syncs every second), so --stop-deployment
scales it to zero first, and the records are deleted until a scan finds none.

The Secrets (--delete-secret) go only after that succeeded: if the records could
not be deleted, the client certificate is kept so that a retry (helm uninstall
again) can still authenticate, and the Job fails. Only Secrets that are this
release's (--release, ownership.py) are deleted; any other is kept and named.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import urllib.error
from pathlib import Path

from . import kube, ownership
from .etcd_gateway import Gateway, GatewayError, tls_context


def owned_keys(kvs: list[dict], owner: str) -> list[str]:
    keys = []
    for kv in kvs:
        try:
            value = json.loads(base64.b64decode(kv.get("value", "")))
        except ValueError:
            continue
        if isinstance(value, dict) and value.get("owner") == owner:
            keys.append(base64.b64decode(kv["key"]).decode())
    return keys


def stop_deployment(client: kube.Client, ref: str, timeout: float, sleep=time.sleep) -> None:
    path = kube.deployment_path(*kube.namespaced(ref))

    def scale_to_zero(deploy: dict) -> dict | None:
        if deploy["spec"].get("replicas", 1) == 0:
            return None
        deploy["spec"]["replicas"] = 0
        return deploy

    try:
        kube.update_with_retry(client, path, scale_to_zero)
    except kube.ApiError as err:
        if err.status == 404:
            return
        raise
    kube.wait_for_rollout(client, path, timeout, sleep=sleep)
    print(f"scaled Deployment {ref} to 0")


def delete_owned(etcd: Gateway, prefix: str, owner: str, settle: float, rounds: int = 5, sleep=time.sleep) -> int:
    """Delete until a scan, `settle` seconds after the last deletion, finds nothing owned."""
    total = 0
    for _ in range(rounds):
        keys = owned_keys(etcd.records(prefix), owner)
        if not keys:
            return total
        for key in keys:
            etcd.delete(key)
        total += len(keys)
        sleep(settle)
    raise ValueError(
        f"records owned by {owner} keep reappearing under {prefix}: is another writer using that owner id?"
    )


def delete_owned_secret(client: kube.Client, ref: str, owner: str) -> str:
    """Delete a Secret if it is `owner`'s (preconditions: exactly the version read); says what happened."""
    namespace, name = kube.namespaced(ref)
    path = kube.secret_path(namespace, name)
    try:
        current = client.get(path)
    except kube.ApiError as err:
        if err.status == 404:
            return f"Secret {ref} is already gone"
        raise
    if not ownership.owned(current, owner):
        return f"kept Secret {ref}: it belongs to {ownership.owner_of(current)}, not to {owner}"
    meta = current["metadata"]
    preconditions = {"uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}
    body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": preconditions}
    try:
        client.request("DELETE", path, body)
    except kube.ApiError as err:
        if err.status == 404:
            return f"Secret {ref} is already gone"
        raise
    return f"deleted Secret {ref}"


def main(argv: list[str] | None = None, client: kube.Client | None = None, etcd: Gateway | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m k2s_dns.etcd_cleanup", description=__doc__.splitlines()[0])
    p.add_argument("--prefix", default="/skydns")
    p.add_argument("--owner", required=True)
    p.add_argument("--endpoint", action="append", default=[])
    p.add_argument("--endpoints-file", type=Path, help="file with comma-separated etcd client URLs")
    p.add_argument("--cert", type=Path)
    p.add_argument("--key", type=Path)
    p.add_argument("--ca", type=Path)
    p.add_argument(
        "--delete-secret",
        action="append",
        default=[],
        metavar="NAMESPACE/NAME",
        help="deleted after the records, if it is the release's",
    )
    p.add_argument("--release", metavar="NAMESPACE/RELEASE", help="the owner of the Secrets to delete")
    p.add_argument("--stop-deployment", metavar="NAMESPACE/NAME", help="the release's ExternalDNS: scaled to 0 first")
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for --stop-deployment")
    p.add_argument("--settle", type=float, default=2, help="seconds between deleting and checking again")
    args = p.parse_args(argv)
    if args.delete_secret and not args.release:
        p.error("--delete-secret needs --release: only the release's own Secrets are deleted")
    endpoints = list(args.endpoint)
    if args.endpoints_file and args.endpoints_file.exists():
        endpoints += [u for u in args.endpoints_file.read_text().strip().split(",") if u]
    errors = 0
    if client is None and (args.delete_secret or args.stop_deployment):
        client = kube.Client.in_cluster()
    if args.stop_deployment:
        try:
            stop_deployment(client, args.stop_deployment, args.timeout)
        except (OSError, kube.ApiError, TimeoutError) as err:
            # Cleaning anyway: most records go, and the failure is reported.
            print(f"error: cannot stop {args.stop_deployment}: {err}", file=sys.stderr)
            errors += 1
    try:
        if etcd is None and endpoints:
            etcd = Gateway(endpoints[0], tls_context(args.cert, args.key, args.ca))
        if etcd is not None:
            count = delete_owned(etcd, args.prefix, args.owner, args.settle)
            print(f"deleted {count} record(s) owned by {args.owner} under {args.prefix}")
        else:
            # The certificate Job publishes the endpoints after the certificates: without them no
            # ExternalDNS ever reached etcd.
            print("no etcd endpoint known: ExternalDNS never reached etcd, no record to delete")
    except (OSError, urllib.error.URLError, ValueError, GatewayError) as err:
        print(f"error: cannot clean etcd: {err}", file=sys.stderr)
        errors += 1
    if errors:
        if args.delete_secret:
            print(
                "error: records of this release may remain in etcd: kept the Secrets "
                f"({', '.join(args.delete_secret)}) so that `helm uninstall` can be retried and authenticate",
                file=sys.stderr,
            )
        return 1
    try:
        for ref in args.delete_secret:
            print(delete_owned_secret(client, ref, args.release))
    except (OSError, kube.ApiError) as err:
        print(f"error: {err}", file=sys.stderr)
        errors += 1
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
