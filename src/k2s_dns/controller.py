"""The controller: keeps CoreDNS serving the zone from etcd while the cluster changes under it.

    python -m k2s_dns.controller --desired NS/NAME --status NS/NAME --lease NS/NAME

It watches the desired state (a ConfigMap Helm owns, so upgrade and rollback
change it), CoreDNS's ConfigMap and Deployment and the certificate Secrets, and
after every change takes the steps converge.py plans until CoreDNS has
converged. kubeadm upgrade replacing the Deployment, a rollback, new
certificates or a hand edit are all just changes it converges from. A Corefile
it cannot handle is reported (status, Event, metric) and left alone until
something changes; API errors are retried with back-off.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

from . import converge, corefile, kube, policy
from .desired import Desired, DesiredError
from .health import Metrics, Probes, serve
from .leader import Elector

COMPONENT = "k2s-dns-controller"


def log(message: str) -> None:
    print(f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} {message}", flush=True)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Status:
    """What `kubectl get configmap <release>-controller-status -o yaml` shows."""

    phase: str = "Starting"  # Converged | Progressing | Error | Standby
    message: str = ""
    leader: str = ""
    zone: str = ""
    corefileSha256: str = ""
    lastConvergence: str = ""
    lastCorrection: str = ""
    lastError: str = ""
    lastErrorTime: str = ""
    corrections: int = 0
    # Objects whose hosts the publication policy refuses (admitted before it): `Kind ns/name: host (why)`.
    publicationViolations: list[str] = field(default_factory=list)


# How often the leader lists the source objects for publication-policy violations. Admission stops new ones;
# what it finds was admitted before the policy (or lost its namespace's trust), so a minute is soon enough.
SCAN_SECONDS = 60.0
SOURCE_LISTS = {
    "ingress": ("Ingress", "/apis/networking.k8s.io/v1/ingresses"),
    "service": ("Service", "/api/v1/services"),
}


@dataclass(frozen=True)
class WatchTarget:
    kind: str  # configmap | deployment | secret
    namespace: str
    name: str


def watch_targets(args: argparse.Namespace, desired: Desired | None) -> set[WatchTarget]:
    desired_ns, desired_name = kube.namespaced(args.desired)
    targets = {WatchTarget("configmap", desired_ns, desired_name)}
    if desired is None:
        return targets
    targets |= {
        WatchTarget("configmap", desired.namespace, desired.configmap),
        WatchTarget("deployment", desired.namespace, desired.deployment),
    }
    if desired.tls:
        targets |= {WatchTarget("secret", desired.namespace, n) for n in (desired.client_secret, desired.ca_secret)}
    if desired.node_local_dns_configmap:
        targets.add(WatchTarget("configmap", desired.namespace, desired.node_local_dns_configmap))
    if desired.endpoints_secret:
        targets.add(WatchTarget("secret", *kube.namespaced(desired.endpoints_secret)))
    return targets


@dataclass
class Reconciler:
    """One reconciliation at a time, by the leader; holds what the status reports."""

    objects: converge.Objects
    desired_ref: str
    metrics: Metrics
    status: Status = field(default_factory=Status)
    desired: Desired | None = None
    drift_since: float | None = None
    _reported: set[tuple[str, str]] = field(default_factory=set)
    _violations_reported: set[str] = field(default_factory=set)

    def reconcile(self) -> float | None:
        """Converge as far as possible now; return seconds until a retry, None to wait for the next event."""
        self.metrics.reconciles.inc()
        try:
            self.desired = Desired.from_configmap(
                self.objects.get(kube.configmap_path(*kube.namespaced(self.desired_ref)))
            )
            self.status.zone = self.desired.zone
            for _ in range(10):
                step = converge.next_step(self.objects, self.desired)
                if not step.writes:
                    break
                try:
                    converge.execute(self.objects, step)
                except kube.ApiError as err:
                    if err.status == 409:  # changed while we planned: plan again from what is there now
                        continue
                    raise
                self._corrected(step)
            return self._settled(step)
        except corefile.CorefileError as err:
            return self._failed("corefile", f"refusing to change the Corefile: {err}", retry=None)
        except DesiredError as err:
            return self._failed("desired", str(err), retry=None)
        except (kube.ApiError, RuntimeError, ValueError, OSError) as err:
            return self._failed("api", str(err), retry=5.0)

    def _corrected(self, step: converge.Step) -> None:
        if self.drift_since is None:
            self.drift_since = time.monotonic()
        kind = "deployment" if step.action == converge.UPDATE_DEPLOYMENT else "configmap"
        self.metrics.corrections.labels(kind).inc()
        self.status.corrections += 1
        self.status.lastCorrection = f"{now_iso()} {kind} {step.path.rsplit('/', 1)[-1]}: {step.reason}"
        self._phase("Progressing", step.reason)
        log(f"corrected {kind} {step.path}: {step.reason}")
        self._event(kind, "Normal", "Corrected", step.reason, dedupe=False)

    def _settled(self, step: converge.Step) -> float | None:
        if step.action == converge.CONVERGED:
            if self.status.phase != "Converged":
                self.status.lastConvergence = now_iso()
                if self.drift_since is not None:
                    healed = time.monotonic() - self.drift_since
                    self.metrics.heal.observe(healed)
                    log(f"converged {healed:.1f}s after the first correction: {step.reason}")
                else:
                    log(f"converged: {step.reason}")
            self.drift_since = None
            self._reported.clear()
            self.metrics.converged.set(1)
            self.metrics.last_success.set_to_current_time()
            self._phase("Converged", step.reason)
            if self.desired is not None and self.desired.publication_policy:
                self.scan_publications()
                return SCAN_SECONDS
            return None
        self.metrics.converged.set(0)
        self._phase("Progressing", step.reason)
        return 5.0  # rollouts report progress through Deployment events too; this is only a safety net

    def _failed(self, kind: str, message: str, retry: float | None) -> float | None:
        self.metrics.errors.labels(kind).inc()
        self.metrics.converged.set(0)
        if (kind, message) not in self._reported:
            log(f"error ({kind}): {message}")
            target = "configmap" if kind == "corefile" else "deployment"
            self._event(target, "Warning", "CorefileRejected" if kind == "corefile" else "ReconcileFailed", message)
            self.status.lastErrorTime = now_iso()
        self.status.lastError = message
        self._phase("Error", message)
        return retry

    def scan_publications(self) -> None:
        """Report the objects whose hosts break the publication policy: status, metric, a Warning Event on
        each (once). A failed list is logged and tried again at the next scan; it never stops convergence."""
        d = self.desired
        lister = getattr(self.objects, "list", None)
        if d is None or lister is None:
            return
        objects: list[tuple[str, dict]] = []
        try:
            for source in d.sources:
                if source in SOURCE_LISTS:
                    kind, path = SOURCE_LISTS[source]
                    objects += [(kind, o) for o in lister(path).get("items") or []]
            namespaces = {
                (n.get("metadata") or {}).get("name", ""): (n.get("metadata") or {}).get("labels") or {}
                for n in lister("/api/v1/namespaces").get("items") or []
            }
        except (kube.ApiError, OSError, ValueError) as err:
            log(f"publication policy: could not list the source objects: {err}")
            return
        found = policy.violations(
            objects, namespaces, d.cluster_domain, d.trusted_namespaces, d.trusted_namespace_label
        )
        self.status.publicationViolations = [f"{v} ({v.reason})" for v in found]
        self.metrics.violations.set(len(found))
        for v in found:
            if str(v) in self._violations_reported:
                continue
            self._violations_reported.add(str(v))
            log(f"publication policy: {v} ({v.reason})")
            self._object_event(v)
        self._violations_reported &= {str(v) for v in found}

    def _object_event(self, v: policy.Violation) -> None:
        """A Warning Event on the object itself: `kubectl describe` and `kubectl get events -n <ns>` show it."""
        api_version = "networking.k8s.io/v1" if v.kind == "Ingress" else "v1"
        involved = {"kind": v.kind, "namespace": v.namespace, "name": v.name, "apiVersion": api_version}
        message = f"host {v.host} breaks the k2s-dns publication policy: {v.reason}"
        self._post_event(involved, "Warning", "PublicationRefused", message)

    def _phase(self, phase: str, message: str) -> None:
        self.status.phase, self.status.message = phase, message

    def _event(self, target: str, type_: str, reason: str, message: str, dedupe: bool = True) -> None:
        """A Kubernetes Event on the CoreDNS object concerned (kubectl describe shows it)."""
        if dedupe:
            if (reason, message) in self._reported:
                return
            self._reported.add((reason, message))
        if self.desired is None or not hasattr(self.objects, "create_event"):
            return
        d = self.desired
        kind, name, api_version = (
            ("ConfigMap", d.configmap, "v1") if target == "configmap" else ("Deployment", d.deployment, "apps/v1")
        )
        involved = {"kind": kind, "namespace": d.namespace, "name": name, "apiVersion": api_version}
        self._post_event(involved, type_, reason, message)

    def _post_event(self, involved: dict, type_: str, reason: str, message: str) -> None:
        """Record an Event about `involved` (kind, namespace, name, apiVersion) in its namespace."""
        if not hasattr(self.objects, "create_event"):
            return
        stamp = now_iso()
        body = {
            "metadata": {"generateName": f"{involved['name']}.k2s-dns-", "namespace": involved["namespace"]},
            "involvedObject": involved,
            "reason": reason,
            "message": message[:1000],
            "type": type_,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": os.environ.get("POD_NAME", COMPONENT),
        }
        try:
            self.objects.create_event(involved["namespace"], body)  # type: ignore[attr-defined]
        except kube.ApiError as err:
            log(f"could not record event {reason} on {involved['kind']} {involved['name']}: {err}")


class Controller:
    """Watch threads set `wake`; the main loop renews the Lease and reconciles when woken or due."""

    def __init__(self, args: argparse.Namespace, objects: converge.Objects, metrics: Metrics):
        self.args = args
        self.objects = objects
        self.metrics = metrics
        self.reconciler = Reconciler(objects, args.desired, metrics)
        self.elector = Elector(
            objects, kube.lease_path(*kube.namespaced(args.lease)), args.identity, args.lease_duration
        )
        self.leader = False
        # True only while the last election attempt found another replica holding the Lease.
        self.standby = False
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.watches: dict[WatchTarget, threading.Event] = {}
        self.probes = Probes(self.ready)
        self._written_status: dict = {}

    def ready(self) -> bool:
        # A standby is ready (it can take over); the leader once CoreDNS has converged, so
        # `helm install --wait` returns only when names resolve. A replica that has not yet found out
        # which it is (just started, or the Lease unreadable) is neither: reporting ready then let
        # `helm install --wait` return before the first reconcile.
        if self.leader:
            return self.reconciler.status.phase == "Converged"
        return self.standby

    def run(self) -> None:
        retry_at: float | None = 0.0
        last_renew = 0.0
        while not self.stop.is_set():
            self.probes.tick()
            now = time.monotonic()
            if now - last_renew >= self.args.renew_interval:
                self._renew()
                last_renew = now
            self.ensure_watches(watch_targets(self.args, self.reconciler.desired))
            if self.leader and (self.wake.is_set() or (retry_at is not None and now >= retry_at)):
                self.wake.clear()
                delay = self.reconciler.reconcile()
                retry_at = None if delay is None else time.monotonic() + delay
                self._write_status()
            timeout = self.args.renew_interval
            if retry_at is not None:
                timeout = max(0.05, min(timeout, retry_at - time.monotonic()))
            if self.wake.wait(timeout):
                time.sleep(0.1)  # let a burst of events (a rollout) arrive before reconciling once
        for stopped in self.watches.values():
            stopped.set()
        if self.leader:
            self.elector.release()
        log("stopped")

    def _renew(self) -> None:
        try:
            leader = self.elector.acquire_or_renew()
            self.standby = not leader
        except kube.ApiError as err:
            log(f"lease renewal failed: {err}")
            leader = self.standby = False
        if leader != self.leader:
            log("became the leader" if leader else "standby: another replica leads")
            self.wake.set()
        self.leader = leader
        self.metrics.leader.set(1 if leader else 0)
        if not leader:
            self.reconciler.status.phase = "Standby"

    def _write_status(self) -> None:
        status = asdict(self.reconciler.status)
        status["leader"] = self.args.identity
        if status == self._written_status:
            return
        path = kube.configmap_path(*kube.namespaced(self.args.status))
        try:
            cm = self.objects.get(path)
            readable = {k: str(v) for k, v in status.items() if v not in ("", 0, [])}
            cm["data"] = {**readable, "status.json": json.dumps(status, indent=2, sort_keys=True)}
            self.objects.put(path, cm)
            self._written_status = status
        except kube.ApiError as err:
            log(f"could not write status to {self.args.status}: {err}")

    def ensure_watches(self, targets: set[WatchTarget]) -> None:
        for target in set(self.watches) - targets:
            self.watches.pop(target).set()
        for target in targets - set(self.watches):
            stopped = threading.Event()
            self.watches[target] = stopped
            threading.Thread(
                target=self._watch, args=(target, stopped), daemon=True, name=f"watch-{target.name}"
            ).start()

    def _watch(self, target: WatchTarget, stopped: threading.Event) -> None:
        from kubernetes import client as k8s
        from kubernetes import watch

        api_client = self.objects.api_client  # type: ignore[attr-defined]
        list_fn = {
            "configmap": k8s.CoreV1Api(api_client).list_namespaced_config_map,
            "secret": k8s.CoreV1Api(api_client).list_namespaced_secret,
            "deployment": k8s.AppsV1Api(api_client).list_namespaced_deployment,
        }[target.kind]
        backoff = 1.0
        while not (stopped.is_set() or self.stop.is_set()):
            w = watch.Watch()
            try:
                # The server ends the watch after timeout_seconds; the re-list that follows
                # (ADDED events for what exists) doubles as a periodic resync.
                for event in w.stream(
                    list_fn,
                    target.namespace,
                    field_selector=f"metadata.name={target.name}",
                    timeout_seconds=self.args.resync_seconds,
                ):
                    if stopped.is_set() or self.stop.is_set():
                        w.stop()
                        break
                    backoff = 1.0
                    if target.kind == "secret" and event["type"] == "MODIFIED":
                        log(f"watch: {target.kind} {target.namespace}/{target.name} changed")
                    self.wake.set()
            except Exception as err:  # a broken watch must never kill the controller
                log(f"watch {target.kind} {target.namespace}/{target.name}: {err}; retrying in {backoff:.0f}s")
                stopped.wait(backoff)
                backoff = min(backoff * 2, 30.0)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m k2s_dns.controller", description=__doc__.splitlines()[0])
    p.add_argument("--desired", required=True, type=str, metavar="NAMESPACE/NAME", help="ConfigMap with desired.json")
    p.add_argument("--status", required=True, metavar="NAMESPACE/NAME", help="ConfigMap the status is written to")
    p.add_argument("--lease", required=True, metavar="NAMESPACE/NAME", help="Lease for leader election")
    p.add_argument("--identity", default=os.environ.get("POD_NAME") or os.uname().nodename)
    p.add_argument("--lease-duration", type=int, default=15)
    p.add_argument("--renew-interval", type=float, default=2.0)
    p.add_argument("--resync-seconds", type=int, default=300)
    p.add_argument("--port", type=int, default=8080, help="/metrics, /healthz, /readyz")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for ref in (args.desired, args.status, args.lease):
        kube.namespaced(ref)
    from kubernetes import client as k8s
    from kubernetes import config

    from .kubeclient import KubeObjects

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    metrics = Metrics()
    controller = Controller(args, KubeObjects(k8s.ApiClient()), metrics)

    def terminate(signum: int, frame: object) -> None:
        log(f"signal {signum}: stopping (no further writes)")
        controller.stop.set()
        controller.wake.set()

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    serve(args.port, metrics, controller.probes)
    log(f"k2s-dns controller {args.identity}: desired {args.desired}, status {args.status}, lease {args.lease}")
    controller.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
