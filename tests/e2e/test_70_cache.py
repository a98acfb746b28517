"""CoreDNS caches the zone's answers for the record TTL, and only those.

With the chart's defaults (`coredns.patch.cacheZone=true`, `externalDNS.recordTTL=5`) the zone's own server
block has a cache plugin and kubeadm's cache stanza is untouched: Service names and PTR answers stay uncached
(their TTL never counts down), an Ingress name carries the record TTL and is cached for that long, and an
address change is answered within the TTL plus a margin. Switching the cache off takes it out of the zone's
block. The session's Service-name probe runs throughout.
"""

from __future__ import annotations

import json
import time

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import dns.reversename

from k2s_dns import corefile

from .conftest import install
from .helpers import (
    NAMESPACE,
    RELEASE,
    Resolver,
    coredns_runs,
    current_corefile,
    diagnostics,
    etcdctl,
    kubectl_json,
    resolves_to,
    wait_for,
    wait_published,
)

RECORD_TTL = 5  # externalDNS.recordTTL's default
MARGIN = 3.0  # ExternalDNS's sync (interval 1s) and the controller's reaction, on top of the TTL
RUNS = 3
ORIGINAL_ANNOTATION = "k2s-dns.io/original-corefile"
ZONE_CACHE = "    cache 30 {\n        denial 9984 1 1\n    }\n"


def ttl_answer(resolver: Resolver, name: str, rdtype: str = "A") -> tuple[frozenset[str], int | None]:
    """The records of `rdtype` CoreDNS answers for name, and their TTL (None: no answer)."""
    message = dns.message.make_query(name, rdtype)
    query = dns.query.tcp if resolver.tcp else dns.query.udp
    try:
        response = query(message, resolver.host, port=resolver.port, timeout=2.0)
    except (dns.exception.Timeout, OSError):
        return frozenset(), None
    rrsets = [r for r in response.answer if r.rdtype == dns.rdatatype.from_text(rdtype)]
    if not rrsets:
        return frozenset(), None
    return frozenset(item.to_text() for r in rrsets for item in r), min(r.ttl for r in rrsets)


def ttls_over(resolver: Resolver, name: str, rdtype: str = "A", seconds: float = 3.0) -> list[int | None]:
    """TTLs of the answers to name, asked every 0.2 s for `seconds`: a cached answer's TTL counts down."""
    ttls = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ttls.append(ttl_answer(resolver, name, rdtype)[1])
        time.sleep(0.2)
    return ttls


def original_corefile() -> str:
    cm = kubectl_json("-n", "kube-system", "get", "configmap", "coredns")
    return (cm["metadata"].get("annotations") or {})[ORIGINAL_ANNOTATION]


def kubeadm_block(text: str) -> corefile.ServerBlock:
    return corefile.find_server_block(corefile.parse(text), ".:53")


def kubeadm_cache(text: str) -> str:
    """The cache plugin of kubeadm's `.:53` block, as written."""
    cache = next(d for d in kubeadm_block(text).directives if d.name == "cache")
    return text[cache.line_start : cache.end]


def zone_block_text(text: str) -> str:
    block = corefile.managed_block(text)
    assert block is not None, text
    return text[block.open_brace : block.close_brace]


def kubernetes_ttl(text: str) -> int:
    """The TTL the kubernetes plugin answers with (its `ttl` option, default 5 s)."""
    k8s = next(d for d in kubeadm_block(text).directives if d.name == "kubernetes")
    ttl = [c.args[0] for c in k8s.children or [] if c.name == "ttl" and c.args]
    return int(ttl[-1]) if ttl else 5


def desired_cache_zone() -> bool:
    cm = kubectl_json("-n", NAMESPACE, "get", "configmap", f"{RELEASE}-coredns-desired")
    return json.loads(cm["data"]["desired.json"]).get("cacheZone", True)


def test_the_zone_block_caches_and_kubeadms_stanza_is_untouched(release, resolver, kubernetes_ip):
    assert desired_cache_zone() is True
    original, patched = original_corefile(), current_corefile()
    assert kubeadm_cache(patched) == kubeadm_cache(original), "kubeadm's cache stanza must stay as it was"
    assert ZONE_CACHE in zone_block_text(patched)
    # Service names are never served from a cache: their TTL never counts down. (PTR answers are cached as
    # kubeadm's stanza says, as before install: the chart no longer touches it.)
    expected = kubernetes_ttl(patched)
    service = "kubernetes.default.svc.cluster.local"
    assert set(ttls_over(resolver, service)) == {expected}, f"{service} answered from a cache"


def test_ingress_name_carries_the_record_ttl_and_is_cached(ingresses, resolver):
    ingresses.apply("cached", ["cached.cluster.local"], ["192.0.2.80"])
    wait_published(resolver, "cached.cluster.local", {"192.0.2.80"}, 60, "cached.cluster.local")
    values = etcdctl("get", "--prefix", "/skydns/local/cluster/cached/", "--print-value-only").splitlines()
    records = [json.loads(v) for v in values if v.startswith("{")]
    assert [r.get("ttl") for r in records if "host" in r] == [RECORD_TTL], records
    ttls = ttls_over(resolver, "cached.cluster.local")
    assert None not in ttls and all(0 < t <= RECORD_TTL for t in ttls), ttls
    # A cached answer counts down (two CoreDNS replicas each cache their own copy).
    assert min(ttls) < RECORD_TTL, f"never answered from the cache: {ttls}"


def test_address_change_is_answered_within_the_ttl(ingresses, resolver, service_probe, figure):
    start = time.time()
    name = "moving-cached.cluster.local"
    limit = RECORD_TTL + MARGIN
    ingresses.apply("moving-cached", [name], ["192.0.2.90"])
    wait_for(resolves_to(resolver, name, {"192.0.2.90"}), 60, name, diagnostics)
    seen = []
    for run in range(RUNS):
        old, new = f"192.0.2.{90 + run}", f"192.0.2.{91 + run}"
        wait_for(resolves_to(resolver, name, {old}), 60, f"{name} {old}", diagnostics)
        # Fill both CoreDNS replicas' caches with the old answer right before the change: the worst case.
        for _ in range(10):
            ttl_answer(resolver, name)
            time.sleep(0.05)
        changed = time.monotonic()
        ingresses.set_addresses("moving-cached", [new])
        last_old, first_new = 0.0, None
        while time.monotonic() - changed < limit + 2.0:
            records, _ = ttl_answer(resolver, name)
            elapsed = time.monotonic() - changed
            if old in records:
                last_old = elapsed
            elif records == {new} and first_new is None:
                first_new = elapsed
            time.sleep(0.1)
        assert first_new is not None, f"{name} never answered {new}\n{diagnostics()}"
        seen.append((first_new, last_old))
        assert last_old <= limit, f"old address answered {last_old:.1f}s after the change (TTL {RECORD_TTL}s)"
    figure(
        f"cache on (record TTL {RECORD_TTL}s), address change ({RUNS} runs, limit {limit:.0f}s): new address "
        f"first answered after {', '.join(f'{f:.1f}' for f, _ in seen)}s, old one last answered after "
        f"{', '.join(f'{o:.1f}' for _, o in seen)}s"
    )
    assert service_probe.failures_since(start) == []


def test_switching_the_cache_off_takes_it_out_of_the_zone_block(release, resolver, service_probe):
    start = time.time()
    service = "kubernetes.default.svc.cluster.local"
    ttl_on = set(ttls_over(resolver, service, seconds=1.0))
    try:
        install("--reuse-values", "--set", "coredns.patch.cacheZone=false")
        wait_for(coredns_runs(lambda text: ZONE_CACHE not in text), 120, "CoreDNS without the zone cache", diagnostics)
        original, current = original_corefile(), current_corefile()
        assert "cache" not in [d.name for d in corefile.managed_block(current).directives]
        assert kubeadm_cache(current) == kubeadm_cache(original)
        assert corefile.unpatch(current) == original
        assert set(ttls_over(resolver, service, seconds=1.0)) == ttl_on, "Service names answer as before"
    finally:
        install("--reuse-values", "--set", "coredns.patch.cacheZone=true")
    wait_for(coredns_runs(lambda text: ZONE_CACHE in text), 120, "CoreDNS with the zone cache again", diagnostics)
    assert service_probe.failures_since(start) == []
