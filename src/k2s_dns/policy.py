"""Who may publish which name: the publication policy as a pure function.

The chart enforces the same rule at admission (templates/publication-policy.yaml, in CEL); doctor and the
controller use this one to say why a host is refused. Keep the two in step (tests/unit/test_policy.py checks
them against each other through the rendered policy).

Inside the cluster domain a pod's search list (`<ns>.svc.<domain> svc.<domain> <domain>`, ndots 5) tries
every short name with the domain appended before the name itself, so a name published there can stand in
for a name other pods look up. Kubernetes lets only whoever creates namespaces shape that part of the
domain; the rule keeps it so:
- never published: what the kubernetes plugin answers (the apex, everything under `svc.` and `pod.`,
  `ns.dns.` and `dns-version.`);
- otherwise only under `<namespace>.<domain>` of the object's own namespace, unless the namespace is trusted.
Outside the cluster domain the zone's owner decides: every namespace may publish there.
"""

from __future__ import annotations

from dataclasses import dataclass

KUBERNETES_LABELS = ("svc", "pod")
KUBERNETES_NAMES = ("", "ns.dns", "dns-version")


def normal(host: str) -> str:
    return host.strip().lower().rstrip(".")


def is_trusted(namespace: str, labels: dict, trusted_namespaces: tuple[str, ...], trusted_label: str) -> bool:
    """A namespace may publish anywhere in the cluster domain: listed by name, or labelled `<label>=true`."""
    return namespace in trusted_namespaces or bool(trusted_label and labels.get(trusted_label) == "true")


def refusal(host: str, namespace: str, cluster_domain: str, trusted: bool = False) -> str | None:
    """Why `namespace` may not publish `host` (None: it may)."""
    h, domain = normal(host), normal(cluster_domain)
    if h != domain and not h.endswith("." + domain):
        return None
    inner = h[: -len(domain) - 1] if h != domain else ""
    # `<x>.<domain>.<domain>`: a pod's search-list expansion of a name in the domain (CoreDNS's view keeps it
    # with the kubernetes plugin, see corefile._owned_names_regex).
    doubled = inner == domain or inner.endswith("." + domain)
    if doubled or inner in KUBERNETES_NAMES or any(inner == k or inner.endswith("." + k) for k in KUBERNETES_LABELS):
        return f"{h} is a name the kubernetes plugin answers (Service, Pod and DNS names of {domain}): never published"
    if trusted or inner.endswith("." + namespace):
        return None
    return (
        f"inside the cluster domain {domain}, namespace {namespace} may publish only names under "
        f"{namespace}.{domain} (e.g. app.{namespace}.{domain}); {h} is not one"
    )


# The annotation ExternalDNS reads host names from, under both prefixes the chart lets it read.
HOSTNAME_ANNOTATIONS = ("external-dns.kubernetes.io/hostname", "external-dns.alpha.kubernetes.io/hostname")


@dataclass(frozen=True)
class Violation:
    kind: str
    namespace: str
    name: str
    host: str
    reason: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}: {self.host}"


def hosts_of(kind: str, obj: dict) -> list[str]:
    """The host names ExternalDNS reads from an Ingress (rules, TLS hosts) or a Service, and their annotation."""
    spec = obj.get("spec") or {}
    hosts: list[str] = []
    if kind == "Ingress":
        hosts += [r["host"] for r in spec.get("rules") or [] if r.get("host")]
        hosts += [h for t in spec.get("tls") or [] for h in t.get("hosts") or []]
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    for key in HOSTNAME_ANNOTATIONS:
        hosts += [h for h in annotations.get(key, "").split(",") if h.strip()]
    return list(dict.fromkeys(normal(h) for h in hosts))


def violations(
    objects: list[tuple[str, dict]],
    namespace_labels: dict[str, dict],
    cluster_domain: str,
    trusted_namespaces: tuple[str, ...] = (),
    trusted_label: str = "",
) -> list[Violation]:
    """Every (kind, object) host the rule refuses, e.g. objects admitted before the admission policy."""
    found = []
    for kind, obj in objects:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace", "")
        labels = namespace_labels.get(namespace) or {}
        trusted = is_trusted(namespace, labels, trusted_namespaces, trusted_label)
        for host in hosts_of(kind, obj):
            why = refusal(host, namespace, cluster_domain, trusted)
            if why:
                found.append(Violation(kind, namespace, meta.get("name", ""), host, why))
    return found
