"""The desired CoreDNS integration, as the chart renders it into a ConfigMap that Helm owns.

Because Helm owns that ConfigMap, `helm upgrade` and `helm rollback` both change
it, and the controller (or a hook) converges CoreDNS to whatever it says now.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

DATA_KEY = "desired.json"


class DesiredError(ValueError):
    """The desired-state ConfigMap is missing or malformed; the message names the field."""


@dataclass(frozen=True)
class Desired:
    zone: str
    path: str
    endpoints: tuple[str, ...] = ()
    # NAMESPACE/NAME of a Secret whose ETCD_URLS key lists further endpoints (cluster mode discovery).
    endpoints_secret: str = ""
    tls: bool = True
    namespace: str = "kube-system"
    configmap: str = "coredns"
    deployment: str = "coredns"
    container: str = "coredns"
    # Empty: the server block that serves `zone` on port 53, found by the patcher.
    server_block: str = ""
    client_secret: str = "etcd-client-for-core-dns"
    ca_secret: str = "etcd-ca"
    # HOSTNAME=NAMESPACE/SERVICE: CoreDNS resolves etcd's host name through /etc/hosts.
    host_aliases: tuple[str, ...] = ()
    pre_stop_sleep: int = 5
    adopt_existing_etcd_block: bool = False
    # A cache plugin in the zone's server block (corefile._zone_block_lines): answers for the record TTL,
    # NXDOMAIN for a second.
    cache_zone: bool = True
    # NodeLocal DNSCache's ConfigMap in `namespace` (empty: not looked for). A zone outside the cluster
    # domain needs a forward to CoreDNS there, or node-local-dns sends it to the node's resolvers.
    node_local_dns_configmap: str = "node-local-dns"
    cluster_domain: str = "cluster.local"
    # The publication policy (k2s_dns.policy): namespaces trusted to publish anywhere in the cluster domain,
    # by name (the release namespace among them) and by a namespace label set to "true".
    publication_policy: bool = False  # an older chart's desired.json says nothing: no policy
    # ExternalDNS sources whose objects the controller checks against the policy (ingress, service).
    sources: tuple[str, ...] = ()
    trusted_namespaces: tuple[str, ...] = ()
    trusted_namespace_label: str = ""

    @classmethod
    def from_json(cls, text: str, source: str = DATA_KEY) -> Desired:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise DesiredError(f"{source}: not JSON ({err})") from None
        if not isinstance(raw, dict):
            raise DesiredError(f"{source}: expected an object")
        known = {f.name: f for f in fields(cls)}
        camel = {_camel(name): name for name in known}
        values: dict = {}
        for key, value in raw.items():
            name = camel.get(key)
            if name is None:
                continue  # written by a newer chart: ignored, not fatal
            values[name] = tuple(value) if isinstance(value, list) else value
        for required in ("zone", "path"):
            if not values.get(required):
                raise DesiredError(f"{source}: field {_camel(required)!r} is required")
        if not values.get("endpoints") and not values.get("endpoints_secret"):
            raise DesiredError(f"{source}: one of 'endpoints' or 'endpointsSecret' is required")
        for name, value in values.items():
            expected = _TYPES[str(known[name].type).split("[")[0]]
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise DesiredError(f"{source}: field {_camel(name)!r} must be {expected.__name__}, got {value!r}")
        return cls(**values)

    @classmethod
    def from_configmap(cls, cm: dict) -> Desired:
        meta = cm.get("metadata", {})
        source = f"ConfigMap {meta.get('namespace', '?')}/{meta.get('name', '?')} key {DATA_KEY}"
        text = (cm.get("data") or {}).get(DATA_KEY)
        if text is None:
            raise DesiredError(f"{source} is missing")
        return cls.from_json(text, source)


_TYPES = {"str": str, "tuple": tuple, "bool": bool, "int": int}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)
