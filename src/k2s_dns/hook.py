"""Helm hook entry point: converge CoreDNS once, from a Job.

    python -m k2s_dns.hook apply  --desired NAMESPACE/NAME
    python -m k2s_dns.hook remove --desired NAMESPACE/NAME [--stop-controller NAMESPACE/DEPLOYMENT]

`apply` runs where no controller does (`coredns.reconcile.enabled=false`: after
install, upgrade and rollback). `remove` runs before uninstall (and after an
upgrade that turned the patch off): it first stops the controller, so nothing
can patch CoreDNS again behind it, then restores the Corefile and the
Deployment. Both take the same steps as the controller (converge.py).
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.parse
from collections.abc import Callable

from . import converge, corefile, kube
from .desired import Desired, DesiredError


def run(
    client: converge.Objects,
    desired: Desired,
    remove: bool,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Write step after step until CoreDNS has converged; a 409 conflict just plans again."""
    deadline = clock() + timeout
    while True:
        step = converge.next_step(client, desired, remove)
        if step.action == converge.CONVERGED:
            print(step.reason, flush=True)
            return
        if step.writes:
            try:
                converge.execute(client, step)
                print(f"{step.action}: {step.reason}", flush=True)
                continue
            except kube.ApiError as err:
                if err.status != 409:
                    raise
        if clock() >= deadline:
            raise TimeoutError(f"CoreDNS did not converge within {timeout:.0f}s: {step.reason}")
        sleep(1.0)


def stop_controller(
    client: kube.Client, ref: str, selector: str, timeout: float, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Scale the controller to 0 and wait until none of its pods is left: a terminating one could still
    write. Also when the Deployment is gone already (an upgrade that removed it)."""
    namespace, name = kube.namespaced(ref)
    path = kube.deployment_path(namespace, name)
    try:
        if client.get(path)["spec"].get("replicas") != 0:
            kube.update_with_retry(client, path, lambda d: {**d, "spec": {**d["spec"], "replicas": 0}})
            print(f"scaled controller {ref} to 0", flush=True)
    except kube.ApiError as err:
        if err.status != 404:
            raise
    deadline = time.monotonic() + timeout
    query = urllib.parse.urlencode({"labelSelector": selector})
    while selector and client.get(f"/api/v1/namespaces/{namespace}/pods?{query}").get("items"):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"controller pods ({selector}) still running after {timeout:.0f}s")
        sleep(1.0)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m k2s_dns.hook", description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["apply", "remove"])
    p.add_argument("--desired", required=True, metavar="NAMESPACE/NAME", help="ConfigMap with desired.json")
    p.add_argument("--stop-controller", metavar="NAMESPACE/DEPLOYMENT", help="remove: scale it to 0 first")
    p.add_argument("--controller-selector", default="", metavar="LABELS", help="its pods, waited for until gone")
    p.add_argument("--timeout", type=float, default=180, help="seconds to converge (and to stop the controller)")
    return p


def main(argv: list[str] | None = None, client: kube.Client | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        client = client or kube.Client.in_cluster()
        desired = Desired.from_configmap(client.get(kube.configmap_path(*kube.namespaced(args.desired))))
        if args.action == "remove" and args.stop_controller:
            stop_controller(client, args.stop_controller, args.controller_selector, args.timeout)
        run(client, desired, args.action == "remove", args.timeout)
    except corefile.CorefileError as err:
        print(f"error: refusing to change the Corefile: {err}", file=sys.stderr)
        return 1
    except (kube.ApiError, TimeoutError, RuntimeError, DesiredError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
