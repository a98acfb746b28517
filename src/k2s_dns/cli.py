"""The `k2s-dns` command (also `python -m k2s_dns`): `k2s-dns doctor [HOST]`."""

from __future__ import annotations

import argparse
import sys

EXIT_BROKEN = 1
EXIT_USAGE = 2


def parse_server(text: str) -> dict:
    """IP, IP:PORT or [IPv6]:PORT -> {server, port, what}."""
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    return {"server": host, "port": port, "what": "--server"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="k2s-dns", description="Tools for the k2s-dns chart.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser(
        "doctor",
        help="check every hop from the Ingress to the DNS answer and name the first broken one",
        description="Checks, in order: the release, the objects that publish HOST, ExternalDNS, the record in "
        "etcd, CoreDNS, and CoreDNS's answer; stops at the first broken hop and prints the command that fixes "
        "it. Without HOST it checks the installation as a whole. Exit code 1 when a hop fails.",
    )
    d.add_argument("host", nargs="?", help="a name under the zone, e.g. app.cluster.local")
    d.add_argument("--release", default="k2s-dns", help="Helm release name (default: %(default)s)")
    d.add_argument("-n", "--namespace", default="k2s-dns", help="release namespace (default: %(default)s)")
    d.add_argument("-o", "--output", choices=("table", "json"), default="table")
    d.add_argument(
        "--server",
        action="append",
        default=[],
        type=parse_server,
        metavar="IP[:PORT]",
        help="also ask this DNS server (e.g. a NodePort or the address K2s forwards to); repeatable",
    )
    d.add_argument(
        "--server-only",
        action="store_true",
        help="ask only the --server addresses, not the CoreDNS pods and the cluster DNS Service (whose addresses "
        "may route off this machine)",
    )
    d.add_argument("--no-local", action="store_true", help="do not ask this machine's own resolver for HOST")
    d.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    d.add_argument("--context", help="kubeconfig context")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help is 0, a usage error 2
        return int(exc.code or 0)
    from .doctor import cluster, report, run
    from .doctor.checks import Names

    try:
        kube = cluster.Kube(args.kubeconfig, args.context)
    except Exception as err:
        print(f"k2s-dns doctor: cannot load a kubeconfig: {err}", file=sys.stderr)
        return EXIT_USAGE
    result = run.run(
        kube,
        Names(args.release, args.namespace),
        args.host,
        servers=args.server,
        direct=not args.server_only,
        local=not args.no_local,
    )
    print(report.as_json(result) if args.output == "json" else report.table(result))
    return 0 if result.ok else EXIT_BROKEN


if __name__ == "__main__":
    sys.exit(main())
