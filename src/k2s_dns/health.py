"""The controller's Prometheus metrics and its /healthz, /readyz and /metrics endpoints."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.reconciles = Counter("k2s_dns_reconciles", "Reconciliations run", registry=r)
        self.corrections = Counter(
            "k2s_dns_corrections", "Writes that brought CoreDNS back to the desired state", ["object"], registry=r
        )
        self.errors = Counter("k2s_dns_reconcile_errors", "Reconciliations that failed", ["kind"], registry=r)
        self.last_success = Gauge(
            "k2s_dns_last_success_timestamp_seconds", "When CoreDNS was last seen converged", registry=r
        )
        self.converged = Gauge("k2s_dns_converged", "1 while CoreDNS matches the desired state", registry=r)
        self.leader = Gauge("k2s_dns_leader", "1 while this replica holds the leader Lease", registry=r)
        self.violations = Gauge(
            "k2s_dns_publication_violations",
            "Host names of source objects that break the publication policy (admitted before it)",
            registry=r,
        )
        self.heal = Histogram(
            "k2s_dns_heal_seconds",
            "From detecting drift to CoreDNS converged again",
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
            registry=r,
        )


class Probes:
    """Liveness: the main loop ticked recently. Readiness: supplied by the controller."""

    def __init__(self, ready: Callable[[], bool], stale_after: float = 60.0):
        self._ready = ready
        self.stale_after = stale_after
        self._tick = time.monotonic()

    def tick(self) -> None:
        self._tick = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self._tick < self.stale_after

    def ready(self) -> bool:
        return self.alive() and self._ready()


def serve(port: int, metrics: Metrics, probes: Probes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path in ("/healthz", "/readyz"):
                ok = probes.alive() if self.path == "/healthz" else probes.ready()
                self._send(200 if ok else 503, b"ok\n" if ok else b"not ok\n", "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # probes every few seconds: keep logs readable
            pass

    server = ThreadingHTTPServer(("", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="http").start()
    return server
