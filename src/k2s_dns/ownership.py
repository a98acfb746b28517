"""Which Secrets are this release's: k2s-dns overwrites or deletes no other.

Every Secret the chart or its Jobs write carries the labels
`app.kubernetes.io/part-of=k2s-dns`, `app.kubernetes.io/instance=<release>` and the
annotation `k2s-dns.io/owner: <namespace>/<release>`. The rule (the same as the chart's
`k2s-dns.ownedByRelease` template): the annotation names this release; without one
(written by a chart version before the annotation), Helm's release annotations name it,
or, without those, the two labels do.
"""

from __future__ import annotations

OWNER_ANNOTATION = "k2s-dns.io/owner"
PART_OF_LABEL = "app.kubernetes.io/part-of"
INSTANCE_LABEL = "app.kubernetes.io/instance"
HELM_NAME = "meta.helm.sh/release-name"
HELM_NAMESPACE = "meta.helm.sh/release-namespace"


class NotOurs(RuntimeError):
    """A Secret exists that this release did not make; the message names it and says what to do."""


def release_name(owner: str) -> str:
    """`NAMESPACE/RELEASE` -> RELEASE."""
    return owner.partition("/")[2]


def owned(obj: dict, owner: str) -> bool:
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    if OWNER_ANNOTATION in annotations:
        return annotations[OWNER_ANNOTATION] == owner
    namespace, _, release = owner.partition("/")
    if HELM_NAME in annotations:
        return annotations[HELM_NAME] == release and annotations.get(HELM_NAMESPACE) == namespace
    return labels.get(PART_OF_LABEL) == "k2s-dns" and labels.get(INSTANCE_LABEL) == release


def owner_of(obj: dict) -> str:
    """Who an existing object belongs to, for messages."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    if OWNER_ANNOTATION in annotations:
        return f"k2s-dns release {annotations[OWNER_ANNOTATION]}"
    if HELM_NAME in annotations:
        return f"Helm release {annotations.get(HELM_NAMESPACE, '?')}/{annotations[HELM_NAME]}"
    if labels.get(PART_OF_LABEL) == "k2s-dns":
        return f"k2s-dns release {labels.get(INSTANCE_LABEL, '?')}"
    return "no k2s-dns release: somebody else made it"


def refusal(refs: list[tuple[str, str, dict]], owner: str) -> str:
    """The message for Secrets (namespace, name, object) that exist and are not `owner`'s."""
    named = "; ".join(f"Secret {ns}/{name} (it belongs to {owner_of(obj)})" for ns, name, obj in refs)
    one = len(refs) == 1
    it = "it" if one else "them"
    return (
        f"{named} {'exists and was' if one else 'exist and were'} not made by release {owner}: k2s-dns never "
        f"overwrites or deletes a Secret that is not its own. Either delete {it} if nothing else needs {it}, "
        "or give CoreDNS's Secrets other names (coredns.clientSecret, coredns.caSecret), or sign certificates "
        f"yourself (etcd.cluster.existingSecret), or set etcd.adoptExistingSecrets=true to let this release take "
        f"{it} over ({'it is' if one else 'they are'} then overwritten, and deleted on uninstall)."
    )


def claim(obj: dict, owner: str, labels: dict[str, str]) -> dict:
    """obj with this release's ownership labels and annotation (a copy of its metadata)."""
    meta = dict(obj.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    meta["annotations"] = {**(meta.get("annotations") or {}), OWNER_ANNOTATION: owner}
    return {**obj, "metadata": meta}
