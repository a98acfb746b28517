"""Least privilege in the bundled etcd: ExternalDNS may write only under the prefix, CoreDNS may only read it.

    python -m k2s_dns.etcd_auth --endpoint https://k2s-dns-etcd:2379 --prefix /skydns \\
        --writer k2s-dns-external-dns --reader k2s-dns-coredns --root-password-file /etc/k2s-dns/root/password \\
        --cert tls.crt --key tls.key --ca ca.crt

etcd takes the user name from the client certificate's CN, so the writer and
reader users have no password: their certificates are their credentials. The
`root` user (which etcd requires before authentication can be turned on) has a
password, because the JSON gateway used here cannot authenticate by CN.
Idempotent: every run converges roles, users and permissions, then makes sure
authentication is on; a prefix changed on upgrade replaces the old permission.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .etcd_gateway import Gateway, GatewayError, b64, prefix_range_end, tls_context, unb64

ROOT = "root"


@dataclass(frozen=True)
class Grant:
    user: str
    role: str
    perm_type: str  # READ, WRITE or READWRITE


def grants(writer: str, reader: str) -> list[Grant]:
    return [Grant(writer, f"{writer}-prefix", "READWRITE"), Grant(reader, f"{reader}-prefix", "READ")]


def permission(prefix: str, perm_type: str) -> dict:
    """Every key starting with the prefix (with or without its trailing slash, as clients ask for both)."""
    prefix = prefix.rstrip("/")
    return {"permType": perm_type, "key": b64(prefix), "range_end": prefix_range_end(prefix)}


def _same(a: dict, b: dict) -> bool:
    return (
        a.get("permType", "READ") == b["permType"]
        and a.get("key") == b["key"]
        and a.get("range_end", a.get("rangeEnd")) == b["range_end"]
    )


def converge(etcd: Gateway, prefix: str, writer: str, reader: str, root_password: str) -> list[str]:
    """Bring roles, users and the auth switch to the wanted state; returns what it changed."""
    changed: list[str] = []
    etcd.token = None  # an expired token (simple tokens live 5 min) would fail even the status call
    enabled = bool(etcd.call("/v3/auth/status").get("enabled"))
    if enabled:
        try:
            etcd.authenticate(ROOT, root_password)
        except GatewayError as err:
            raise GatewayError(
                err.status, f"cannot log in as {ROOT} ({err.message}): was the password Secret replaced?"
            ) from None
    users = set(etcd.call("/v3/auth/user/list").get("users", []))
    roles = set(etcd.call("/v3/auth/role/list").get("roles", []))

    if ROOT not in users:
        etcd.call("/v3/auth/user/add", {"name": ROOT, "password": root_password})
        changed.append(f"user {ROOT}")
    elif not enabled:
        # A run that stopped before enabling may have left another password behind.
        etcd.call("/v3/auth/user/changepw", {"name": ROOT, "password": root_password})
    if ROOT not in _user_roles(etcd, ROOT):
        etcd.call("/v3/auth/user/grant", {"user": ROOT, "role": ROOT})
        changed.append(f"role {ROOT} to {ROOT}")

    for grant in grants(writer, reader):
        wanted = permission(prefix, grant.perm_type)
        if grant.role not in roles:
            etcd.call("/v3/auth/role/add", {"name": grant.role})
            changed.append(f"role {grant.role}")
        perms = etcd.call("/v3/auth/role/get", {"role": grant.role}).get("perm", [])
        for perm in perms:
            if not _same(perm, wanted):
                end = perm.get("range_end", perm.get("rangeEnd", ""))
                etcd.call("/v3/auth/role/revoke", {"role": grant.role, "key": perm.get("key", ""), "range_end": end})
                changed.append(f"revoked {unb64(perm.get('key', ''))!r} from {grant.role}")
        if not any(_same(perm, wanted) for perm in perms):
            etcd.call("/v3/auth/role/grant", {"name": grant.role, "perm": wanted})
            changed.append(f"{grant.perm_type} on {prefix} to {grant.role}")
        if grant.user not in users:
            etcd.call("/v3/auth/user/add", {"name": grant.user, "options": {"no_password": True}})
            changed.append(f"user {grant.user}")
        if grant.role not in _user_roles(etcd, grant.user):
            etcd.call("/v3/auth/user/grant", {"user": grant.user, "role": grant.role})
            changed.append(f"role {grant.role} to {grant.user}")

    if not enabled:
        etcd.call("/v3/auth/enable")
        changed.append("authentication on")
    return changed


def _user_roles(etcd: Gateway, user: str) -> list[str]:
    return etcd.call("/v3/auth/user/get", {"name": user}).get("roles", [])


def converge_with_retry(
    etcd: Gateway,
    timeout: float,
    step: Callable[[Gateway], list[str]],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """etcd may still be starting (a post-install hook does not wait for it): retry until the deadline."""
    deadline = clock() + timeout
    while True:
        try:
            return step(etcd)
        except (OSError, urllib.error.URLError) as err:
            if clock() >= deadline:
                raise TimeoutError(f"etcd at {etcd.endpoint} not reachable after {timeout:.0f}s: {err}") from None
        except GatewayError as err:
            # 503/504: no leader yet. Anything else is a real answer and final.
            if err.status < 500 or clock() >= deadline:
                raise
        sleep(2)


def main(
    argv: list[str] | None = None, etcd: Gateway | None = None, sleep: Callable[[float], None] = time.sleep
) -> int:
    p = argparse.ArgumentParser(prog="python -m k2s_dns.etcd_auth", description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--prefix", default="/skydns")
    p.add_argument("--writer", required=True, help="CN of ExternalDNS's client certificate")
    p.add_argument("--reader", required=True, help="CN of CoreDNS's client certificate")
    p.add_argument("--root-password-file", type=Path, required=True)
    p.add_argument("--cert", type=Path)
    p.add_argument("--key", type=Path)
    p.add_argument("--ca", type=Path)
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for etcd on each run")
    p.add_argument("--interval", type=float, default=0, help="run again every this many seconds (0: once)")
    args = p.parse_args(argv)
    password = args.root_password_file.read_text().strip()
    if not password:
        print(f"error: {args.root_password_file} is empty", file=sys.stderr)
        return 1
    etcd = etcd or Gateway(args.endpoint, tls_context(args.cert, args.key, args.ca))
    first = True
    while True:
        try:
            changed = converge_with_retry(
                etcd, args.timeout, lambda gw: converge(gw, args.prefix, args.writer, args.reader, password)
            )
            status = 0
            if changed or first:
                print("etcd authentication:", "; ".join(changed) if changed else "already as wanted")
        except (GatewayError, TimeoutError) as err:
            print(f"error: {err}", file=sys.stderr)
            status = 1
        if args.interval <= 0:
            return status
        first = False
        sleep(args.interval)


if __name__ == "__main__":
    # As PID 1 of its container, Python would ignore SIGTERM and hold up every etcd pod deletion for the
    # whole grace period.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.exit(main())
