"""Wait until etcd serves ExternalDNS, before ExternalDNS starts (its init container).

    python -m k2s_dns.etcd_wait        # reads ETCD_URLS and ETCD_CA_FILE/CERT_FILE/KEY_FILE, as ExternalDNS does

Why: ExternalDNS exits on the first etcd error of a sync ("failed to do run once"), and its /healthz answers
200 before that first sync. Started next to an etcd that has no quorum yet (a fresh install, three members
on new volumes), it crash-loops with a growing back-off, and `helm install --wait` can count it ready in the
seconds before it exits. Waiting here, with ExternalDNS's own endpoints and client certificate, turns that
into one container that says what it waits for and ends as soon as etcd is ready.

Ready means: one endpoint answers `GET /readyz` with 200 (etcd >= 3.5.12: serializable and linearizable
reads work, so there is a leader) or, on an older etcd without /readyz, `GET /health` with `"health":"true"`.
Both are served on the client port and need no etcd user, only the TLS client certificate.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .etcd_gateway import tls_context

READY = "ready"


@dataclass(frozen=True)
class Settings:
    endpoints: list[str]
    ca: Path | None
    cert: Path | None
    key: Path | None


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """ExternalDNS's coredns provider settings: ETCD_URLS (comma-separated) and the three TLS files."""
    endpoints = [u.strip().rstrip("/") for u in env.get("ETCD_URLS", "").split(",") if u.strip()]
    if not endpoints:
        raise ValueError("ETCD_URLS is empty: set etcd.external.endpoints (or the release's etcd mode) in values")
    bad = [u for u in endpoints if not u.startswith(("http://", "https://"))]
    if bad:
        raise ValueError(f"ETCD_URLS: {', '.join(bad)} must start with http:// or https://")

    def path(name: str) -> Path | None:
        return Path(env[name]) if env.get(name) else None

    return Settings(endpoints, path("ETCD_CA_FILE"), path("ETCD_CERT_FILE"), path("ETCD_KEY_FILE"))


def verdict(path: str, status: int, body: str) -> str:
    """READY, or why this answer of etcd's health endpoint `path` does not count as ready."""
    text = body.strip()
    if path == "/readyz":
        return READY if status == 200 else f"/readyz answered {status}: {text[:200] or 'no detail'}"
    try:
        healthy = status == 200 and str(json.loads(text).get("health")).lower() == "true"
    except (ValueError, AttributeError):
        healthy = False
    return READY if healthy else f"/health answered {status}: {text[:200] or 'no detail'}"


def _get(url: str, context: ssl.SSLContext | None, timeout: float) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


Fetch = Callable[[str], tuple[int, str]]


def probe(endpoint: str, fetch: Fetch) -> str:
    """READY, or the reason this endpoint is not: /readyz first, /health where /readyz does not exist."""
    try:
        status, body = fetch(f"{endpoint}/readyz")
        if status != 404:
            return verdict("/readyz", status, body)
        status, body = fetch(f"{endpoint}/health")
        return verdict("/health", status, body)
    except (urllib.error.URLError, OSError, ssl.SSLError) as err:
        reason = getattr(err, "reason", err)
        return f"{type(reason).__name__}: {reason}"


def advice(reasons: Mapping[str, str]) -> str:
    """What to look at next, from the reasons the endpoints gave."""
    text = " ".join(reasons.values())
    if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
        return "the client certificate or CA does not match etcd's: compare the Secrets the pod mounts with etcd's CA"
    if "Name or service not known" in text or "gaierror" in text:
        return "the endpoint's host name does not resolve: check etcd.external.endpoints / the etcd Service"
    return (
        "etcd is not ready or not reachable: kubectl get pods -l app.kubernetes.io/component=etcd, "
        "and any NetworkPolicy between this pod and etcd"
    )


def wait(
    settings: Settings,
    fetch: Fetch,
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    interval: float = 1.0,
    report_every: float = 10.0,
) -> float:
    """Probe every endpoint each `interval` until one is ready; returns the seconds waited. Logs the first
    failure at once and then every `report_every` seconds, each time naming every endpoint's reason."""
    start = clock()
    next_report = start
    while True:
        reasons: dict[str, str] = {}
        for endpoint in settings.endpoints:
            reason = probe(endpoint, fetch)
            if reason == READY:
                log(f"etcd ready at {endpoint} after {clock() - start:.1f}s")
                return clock() - start
            reasons[endpoint] = reason
        now = clock()
        if now >= next_report:
            detail = "; ".join(f"{e}: {r}" for e, r in reasons.items())
            log(f"waiting for etcd ({now - start:.0f}s): {detail}. Next: {advice(reasons)}")
            next_report = now + report_every
        sleep(interval)


def main(env: Mapping[str, str] | None = None) -> int:
    try:
        settings = settings_from_env(os.environ if env is None else env)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # The chart refuses endpoints that mix https:// and http://; urllib uses the context for https:// only.
    https = any(e.startswith("https://") for e in settings.endpoints)
    context = tls_context(settings.cert, settings.key, settings.ca) if https else None

    def fetch(url: str) -> tuple[int, str]:
        return _get(url, context, timeout=5)

    wait(settings, fetch, lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
