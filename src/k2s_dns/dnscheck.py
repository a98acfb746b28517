"""`helm test`: poll the pod's resolver (CoreDNS) until NAME resolves to EXPECTED.

python -m k2s_dns.dnscheck NAME EXPECTED_IP [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import socket
import sys
import time


def addresses(name: str) -> set[str]:
    try:
        return {info[4][0] for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)}
    except socket.gaierror:
        return set()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m k2s_dns.dnscheck")
    p.add_argument("name")
    p.add_argument("expected")
    p.add_argument("--timeout", type=float, default=120)
    args = p.parse_args(argv)
    deadline = time.monotonic() + args.timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = addresses(args.name)
        if args.expected in seen:
            print(f"{args.name} -> {sorted(seen)}")
            return 0
        time.sleep(1)
    print(
        f"FAIL: {args.name} did not resolve to {args.expected} within {args.timeout:.0f}s (last answer: "
        f"{sorted(seen) or 'none'})",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
