"""Uninstall in cluster mode: delete the records this release owns from the cluster etcd, and its Secrets.

    python -m k2s_dns.etcd_cleanup --prefix /skydns --owner k2s-dns --endpoints-file /etc/k2s-dns/endpoints/ETCD_URLS \\
        --cert tls.crt --key tls.key --ca ca.crt --delete-secret kube-system/etcd-ca ...

Talks to etcd's JSON gateway (/v3/kv/range, /v3/kv/deleterange) with the
client certificate, so the hook image needs no etcd library. A record is this
release's only if its JSON `owner` field (ExternalDNS --coredns-strictly-owned)
equals --owner: nothing else under the prefix, and nothing outside it, is touched.
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

from . import kube


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def prefix_range_end(prefix: str) -> str:
    """etcd's range end for "every key starting with prefix" (last byte + 1)."""
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


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


class Etcd:
    def __init__(self, endpoint: str, context: ssl.SSLContext | None):
        self.endpoint = endpoint.rstrip("/")
        self.context = context

    def call(self, api: str, body: dict) -> dict:
        req = urllib.request.Request(f"{self.endpoint}/v3/kv/{api}", data=json.dumps(body).encode(), method="POST")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, context=self.context, timeout=15) as resp:
            return json.loads(resp.read())

    def records(self, prefix: str) -> list[dict]:
        prefix = prefix.rstrip("/") + "/"
        return self.call("range", {"key": b64(prefix), "range_end": prefix_range_end(prefix)}).get("kvs", [])

    def delete(self, key: str) -> None:
        self.call("deleterange", {"key": b64(key)})


def tls_context(cert: Path | None, key: Path | None, ca: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cert and key:
        context.load_cert_chain(str(cert), str(key))
    return context


def main(argv: list[str] | None = None, client: kube.Client | None = None, etcd: Etcd | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m k2s_dns.etcd_cleanup", description=__doc__.splitlines()[0])
    p.add_argument("--prefix", default="/skydns")
    p.add_argument("--owner", required=True)
    p.add_argument("--endpoint", action="append", default=[])
    p.add_argument("--endpoints-file", type=Path, help="file with comma-separated etcd client URLs")
    p.add_argument("--cert", type=Path)
    p.add_argument("--key", type=Path)
    p.add_argument("--ca", type=Path)
    p.add_argument("--delete-secret", action="append", default=[], metavar="NAMESPACE/NAME")
    args = p.parse_args(argv)
    endpoints = list(args.endpoint)
    if args.endpoints_file and args.endpoints_file.exists():
        endpoints += [u for u in args.endpoints_file.read_text().strip().split(",") if u]
    errors = 0
    try:
        if etcd is None and endpoints:
            etcd = Etcd(endpoints[0], tls_context(args.cert, args.key, args.ca))
        if etcd is not None:
            keys = owned_keys(etcd.records(args.prefix), args.owner)
            for key in keys:
                etcd.delete(key)
            print(f"deleted {len(keys)} record(s) owned by {args.owner} under {args.prefix}")
    except (OSError, urllib.error.URLError, ValueError) as err:
        print(f"error: cannot clean etcd: {err}", file=sys.stderr)
        errors += 1
    try:
        client = client or (kube.Client.in_cluster() if args.delete_secret else None)
        for ref in args.delete_secret:
            namespace, _, name = ref.partition("/")
            try:
                client.request("DELETE", f"/api/v1/namespaces/{namespace}/secrets/{name}")
                print(f"deleted Secret {ref}")
            except kube.ApiError as err:
                if err.status != 404:
                    raise
    except (OSError, kube.ApiError) as err:
        print(f"error: {err}", file=sys.stderr)
        errors += 1
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
