"""The hops of `k2s-dns doctor`, as pure functions over plain dicts (the API server's JSON).

Each check_* returns one Result: status OK, WARN, FAIL or SKIP, a one-line detail that says what was
found, and for FAIL (and most WARN) the exact command that fixes it. Nothing here does I/O; cluster.py
gathers the dicts, run.py calls the checks in order and stops at the first FAIL.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from .. import corefile, policy
from ..deployment import CA_DIR, CA_VOLUME, CERT_DIR, CLIENT_VOLUME, remove_etcd_client, same_spec
from ..desired import Desired, DesiredError

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"
HOPS = ("release", "source", "external-dns", "etcd", "coredns", "answer", "workstation")
PULL_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
LEGACY_PREFIX = "external-dns.alpha.kubernetes.io/"
DEFAULT_PREFIX = "external-dns.kubernetes.io/"
ETCD_CLIENT_PORT = 2379
WILDCARD_ISSUE = "https://github.com/coredns/coredns/issues/4314"
# CoreDNS etcd errors newer than this fail the hop; older ones (still in the log window) only warn.
RECENT_SECONDS = 120
# ExternalDNS log lines that mean a synchronisation finished (info level).
SYNC_MARKERS = ("All records are already up to date", "Add/set key", "Delete key", "Reconciliation succeeded")


@dataclass
class Result:
    hop: str
    status: str
    detail: str
    fix: str = ""
    data: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"hop": self.hop, "status": self.status, "detail": self.detail}
        if self.fix:
            out["fix"] = self.fix
        if self.data:
            out["data"] = self.data
        return out


@dataclass(frozen=True)
class Names:
    """Object names of a release, as the chart's helpers make them (no nameOverride/fullnameOverride)."""

    release: str = "k2s-dns"
    namespace: str = "k2s-dns"

    @property
    def fullname(self) -> str:
        return self.release if "k2s-dns" in self.release else f"{self.release}-k2s-dns"

    @property
    def external_dns(self) -> str:
        return f"{self.fullname}-external-dns"

    @property
    def controller(self) -> str:
        return f"{self.fullname}-controller"

    @property
    def status(self) -> str:
        return f"{self.controller}-status"

    @property
    def desired(self) -> str:
        return f"{self.fullname}-coredns-desired"

    @property
    def etcd(self) -> str:
        return f"{self.fullname}-etcd"

    @property
    def etcd_root(self) -> str:
        return f"{self.etcd}-root"

    def helm_upgrade(self, *sets: str) -> str:
        extra = "".join(f" --set {s}" for s in sets)
        return f"helm upgrade {self.release} charts/k2s-dns -n {self.namespace} --reuse-values{extra}"

    def kubectl(self, args: str) -> str:
        return f"kubectl -n {self.namespace} {args}"


# ---------------------------------------------------------------------------------------------- helpers


def fqdn(name: str) -> str:
    return name.strip().lower().rstrip(".")


def within(name: str, zone: str) -> bool:
    return corefile.within(fqdn(name), fqdn(zone))


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def selector_matches(selector: dict | None, labels: dict | None) -> bool:
    """A LabelSelector (matchLabels, matchExpressions); {} and None match everything."""
    labels = labels or {}
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


_TERM = re.compile(r"^\s*(!?)\s*([^\s!=,()]+)\s*(?:(==|=|!=)\s*(\S*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$")


def string_selector_matches(expression: str, labels: dict | None) -> bool | None:
    """A label selector string (`--annotation-filter`, `--label-filter`); None if it cannot be read."""
    labels = labels or {}
    terms, depth, current = [], 0, ""
    for ch in expression:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    for term in terms:
        if not term.strip():
            continue
        match = _TERM.match(term)
        if not match:
            return None
        negate, key, op, value, set_op, values = match.groups()
        if op in ("=", "=="):
            ok = labels.get(key) == value
        elif op == "!=":
            ok = labels.get(key) != value
        elif set_op:
            members = {v.strip() for v in values.split(",")}
            ok = (labels.get(key) in members) if set_op == "in" else (labels.get(key) not in members)
        else:
            ok = (key in labels) != bool(negate)
        if not ok:
            return False
    return True


def external_dns_settings(args: list[str]) -> dict:
    """The ExternalDNS flags doctor cares about, from its container args."""
    multi = {"source", "ingress-class", "domain-filter", "exclude-domains", "service-type-filter"}
    values: dict[str, list[str]] = {}
    flags: set[str] = set()
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        i += 1
        if not arg.startswith("--"):
            continue
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i < len(items) and not items[i].startswith("--") and key in multi | {"txt-owner-id", "txt-prefix"}:
                value = items[i]
                i += 1
            else:
                flags.add(key)
                continue
        values.setdefault(key, []).append(value)

    def one(key: str, default: str = "") -> str:
        return values.get(key, [default])[-1]

    def many(key: str) -> list[str]:
        return [v for item in values.get(key, []) for v in item.split(",") if v]

    prefix = one("annotation-prefix", DEFAULT_PREFIX)
    prefixes = [prefix]
    if "enable-legacy-annotation-prefix" in flags and LEGACY_PREFIX not in prefixes:
        prefixes.append(LEGACY_PREFIX)
    if not args:  # nothing known: honour both, as the chart's default does
        prefixes = [DEFAULT_PREFIX, LEGACY_PREFIX]
    return {
        "sources": many("source") or ["ingress"],
        "ingress_classes": many("ingress-class"),
        "domain_filters": many("domain-filter"),
        "exclude_domains": many("exclude-domains"),
        "service_types": many("service-type-filter"),
        "txt_owner_id": one("txt-owner-id", "default"),
        "txt_prefix": one("txt-prefix"),
        "annotation_prefixes": prefixes,
        "annotation_filter": one("annotation-filter"),
        "label_filter": one("label-filter"),
        "ignore_tls": "ignore-ingress-tls-spec" in flags,
        "ignore_rules": "ignore-ingress-rules-spec" in flags,
        "ignore_hostname_annotation": "ignore-hostname-annotation" in flags,
        "dry_run": "dry-run" in flags,
        "log_level": one("log-level", "info"),
    }


def container_args(deploy: dict | None, name: str = "external-dns") -> list[str]:
    containers = ((deploy or {}).get("spec", {}).get("template", {}).get("spec", {})).get("containers", [])
    for c in containers:
        if c.get("name") == name or len(containers) == 1:
            return [*c.get("command", [])[1:], *c.get("args", [])]
    return []


def pod_ready(pod: dict) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in pod.get("status", {}).get("conditions", [])
    )


def pod_problems(pod: dict) -> list[dict]:
    """What keeps a pod from running: image pulls, crash loops, scheduling, config; not-ready last."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    if status.get("phase") in ("Succeeded", "Failed") or meta.get("deletionTimestamp"):
        return []
    images = {c["name"]: c.get("image", "") for c in [*spec.get("initContainers", []), *spec.get("containers", [])]}
    name = meta.get("name", "?")
    found: list[dict] = []
    for cs in [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        base = {"pod": name, "container": cs.get("name", "?"), "image": images.get(cs.get("name"), cs.get("image", ""))}
        message = (waiting.get("message") or "").strip().splitlines()[0:1]
        if reason in PULL_ERRORS:
            found.append({**base, "kind": "image", "reason": reason, "message": message[0] if message else ""})
        elif reason == "CrashLoopBackOff":
            last = (cs.get("lastState") or {}).get("terminated") or {}
            why = f"exit code {last.get('exitCode', '?')}" + (f", {last['reason']}" if last.get("reason") else "")
            found.append({**base, "kind": "crash", "reason": reason, "message": why})
        elif reason in ("CreateContainerConfigError", "CreateContainerError", "RunContainerError"):
            found.append({**base, "kind": "config", "reason": reason, "message": message[0] if message else ""})
    for cond in status.get("conditions", []):
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            found.append(
                {
                    "pod": name,
                    "kind": "unschedulable",
                    "reason": cond.get("reason", ""),
                    "message": cond.get("message", ""),
                }
            )
    # An init container that still runs holds the pod back; its log says why (ExternalDNS's wait-for-etcd
    # names every etcd endpoint and what it answered).
    initializing = [cs for cs in status.get("initContainerStatuses", []) if "running" in (cs.get("state") or {})]
    if not found and initializing:
        cs = initializing[0]
        found.append(
            {"pod": name, "container": cs.get("name", "?"), "kind": "init", "reason": "running", "message": ""}
        )
    if not found and not pod_ready(pod):
        waiting = [
            ((cs.get("state") or {}).get("waiting") or {}).get("reason", "")
            for cs in status.get("containerStatuses", [])
        ]
        reason = next((w for w in waiting if w), status.get("phase", "not ready"))
        found.append({"pod": name, "kind": "notready", "reason": reason, "message": ""})
    return found


def describe_problem(p: dict) -> str:
    where = f"pod {p['pod']}" + (f" container {p['container']}" if p.get("container") else "")
    if p["kind"] == "image":
        return f"{where} cannot pull image {p['image']} ({p['reason']}{': ' + p['message'] if p['message'] else ''})"
    if p["kind"] == "crash":
        return f"{where} is crash-looping ({p['message']})"
    if p["kind"] == "unschedulable":
        return f"{where} is not scheduled: {p['message'] or p['reason']}"
    if p["kind"] == "config":
        return f"{where} cannot start: {p['reason']} {p['message']}".strip()
    if p["kind"] == "init":
        return f"{where} (an init container) has not finished: the pod waits for it"
    return f"{where} is not ready ({p['reason']})"


def image_fix(image: str, names: Names, chart_version: str = "", helm_image: dict | None = None) -> str:
    """How to get an image that cannot be pulled onto the nodes, or back to the chart's own reference.

    helm_image: {overrides, defaults} of coredns.patch.image from the Helm release (user values, chart values).
    """
    repo, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    if "k2s-dns-hook" in repo:
        overrides = (helm_image or {}).get("overrides") or {}
        defaults = (helm_image or {}).get("defaults") or {}
        changed = [
            key
            for key in ("registry", "repository", "tag")
            if overrides.get(key) not in (None, "") and overrides.get(key) != defaults.get(key)
        ]
        if changed:
            said = ", ".join(f"{key} {overrides[key]}" for key in changed)
            sets = [f"coredns.patch.image.{key}={defaults.get(key) or ''}" for key in changed]
            return f"the release overrides the chart's image ({said}); back to the chart's: " + names.helm_upgrade(
                *sets
            )
        if chart_version and tag != chart_version:
            return (
                f"the chart's own tag is {chart_version} (an empty tag means it): "
                f"{names.helm_upgrade('coredns.patch.image.tag=')}"
            )
        tar = f"k2s-dns-hook-{tag}.tar"
        get = f"make package (writes dist/{tar}) or docker save {image} -o {tar}"
    else:
        tar = repo.rsplit("/", 1)[-1] + f"-{tag}.tar"
        get = f"docker pull {image} && docker save {image} -o {tar}"
    return (
        f"{get}; then on every node: ctr -n k8s.io images import {tar} "
        f"(K2s: k2s image import -t {tar} --docker-archive); or push it to a registry the nodes reach and "
        f"{names.helm_upgrade('global.imageRegistry=<registry>')}"
    )


def problem_fix(p: dict, names: Names, chart_version: str = "", helm_image: dict | None = None) -> str:
    ns = p.get("namespace") or names.namespace
    if p["kind"] == "image":
        return image_fix(p["image"], names, chart_version, helm_image)
    if p["kind"] == "crash":
        return f"kubectl -n {ns} logs {p['pod']} -c {p['container']} --previous"
    if p["kind"] == "init":
        return f"kubectl -n {ns} logs {p['pod']} -c {p['container']}   # what it waits for"
    return f"kubectl -n {ns} describe pod {p['pod']}"


def _deploy_replicas(deploy: dict | None) -> int:
    return int(((deploy or {}).get("spec") or {}).get("replicas", 1))


def _ready_replicas(obj: dict | None) -> int:
    return int(((obj or {}).get("status") or {}).get("readyReplicas") or 0)


def _component(pod: dict) -> str:
    return pod.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component", "")


def desired_of(raw: dict | str | None) -> Desired:
    """desired.json (the dict or its text) as the controller reads it; raises DesiredError."""
    if raw is None:
        raise DesiredError("desired.json is missing")
    return Desired.from_json(raw if isinstance(raw, str) else json.dumps(raw))


def mode_of(desired_cm: dict | None, etcd_statefulset: dict | None) -> str:
    annotations = ((desired_cm or {}).get("metadata") or {}).get("annotations") or {}
    return annotations.get("k2s-dns.io/etcd-mode") or ("bundled" if etcd_statefulset else "external")


# ---------------------------------------------------------------------------------------------- hop 1


def coredns_untouched(coredns: dict | None) -> bool:
    """CoreDNS's Corefile and Deployment carry nothing k2s-dns adds (False when they could not be read)."""
    if not coredns or coredns.get("corefile") is None or coredns.get("deployment") is None:
        return False
    deploy = coredns["deployment"]
    return not corefile.is_patched(coredns["corefile"]) and same_spec(remove_etcd_client(deploy), deploy)


def check_release(names: Names, facts: dict) -> Result:
    """The chart's objects exist, images pull, etcd and controller pods run, the controller's phase.

    facts: helm ({status, chart, revision} or None), desired_cm, external_dns, controller, etcd (StatefulSet),
    status_cm, pods (every pod of the release).
    """
    hop = "release"
    helm = facts.get("helm") or {}
    chart = helm.get("chart", "")
    cm = facts.get("desired_cm")
    if cm is None:
        state = f" (helm says: {helm['status']})" if helm.get("status") else ""
        return Result(
            hop,
            FAIL,
            f"release {names.release} not found in namespace {names.namespace}: no ConfigMap {names.desired}{state}",
            f"helm install {names.release} charts/k2s-dns -n {names.namespace} --create-namespace"
            "   (another release? helm list -A, then --release/--namespace)",
        )
    try:
        desired = desired_of((cm.get("data") or {}).get("desired.json"))
    except DesiredError as err:
        return Result(hop, FAIL, f"the release's desired state is unreadable: {err}", names.helm_upgrade())
    mode = mode_of(cm, facts.get("etcd"))
    if helm.get("status") == "uninstalling":
        if coredns_untouched(facts.get("coredns")):
            # The pre-delete Job restores CoreDNS; with nothing of the release in CoreDNS (typically: the image
            # was never pulled, so neither the controller nor a hook ever ran) there is nothing to restore, and
            # skipping the hook loses nothing.
            return Result(
                hop,
                FAIL,
                f"release {names.release} is stuck uninstalling: its pre-delete hook Job has not finished, and "
                "CoreDNS carries nothing of the release (no etcd block, no mounts): nothing to restore",
                f"helm uninstall {names.release} -n {names.namespace} --no-hooks; "
                # The pre-delete hook's own objects (Job, ServiceAccount, Roles) are not Helm's to delete any more.
                "kubectl delete jobs,serviceaccounts,roles,rolebindings -A "
                f"-l app.kubernetes.io/instance={names.release},app.kubernetes.io/part-of=k2s-dns",
            )
        return Result(
            hop,
            FAIL,
            f"release {names.release} is stuck uninstalling: its pre-delete hook Job has not finished",
            f"{names.kubectl(f'get jobs,pods -l app.kubernetes.io/instance={names.release}')}"
            "   (a hook pod that cannot pull its image: see the image fix of `k2s-dns doctor` before the uninstall)",
        )
    missing = []
    if facts.get("external_dns") is None:
        missing.append(f"Deployment {names.external_dns}")
    if mode == "bundled" and facts.get("etcd") is None:
        missing.append(f"StatefulSet {names.etcd}")
    if facts.get("status_cm") is not None and facts.get("controller") is None:
        missing.append(f"Deployment {names.controller}")
    if missing:
        return Result(hop, FAIL, "objects of the release are missing: " + ", ".join(missing), names.helm_upgrade())
    pods = facts.get("pods") or []
    problems = [p for pod in pods for p in pod_problems(pod)]
    pulls = [p for p in problems if p["kind"] == "image"]
    if pulls:
        others = f" (and {len(pulls) - 1} more)" if len(pulls) > 1 else ""
        return Result(
            hop,
            FAIL,
            describe_problem(pulls[0]) + others,
            image_fix(pulls[0]["image"], names, chart, helm.get("image")),
            {"pulls": pulls},
        )
    essential = [p for p in problems if _component_of(pods, p["pod"]) in ("etcd", "controller")]
    if essential:
        return Result(hop, FAIL, describe_problem(essential[0]), problem_fix(essential[0], names, chart))
    sts = facts.get("etcd")
    if mode == "bundled" and sts is not None:
        want = int((sts.get("spec") or {}).get("replicas", 1))
        if want == 0:
            return Result(
                hop,
                FAIL,
                f"etcd is scaled to 0 (StatefulSet {names.etcd})",
                names.kubectl(f"scale statefulset/{names.etcd} --replicas=1"),
            )
        if _ready_replicas(sts) < want:
            return Result(
                hop,
                FAIL,
                f"etcd {_ready_replicas(sts)}/{want} ready (StatefulSet {names.etcd})",
                names.kubectl(f"describe statefulset {names.etcd}"),
            )
    warnings = []
    controller = facts.get("controller")
    phase = ""
    if controller is not None:
        if _deploy_replicas(controller) == 0:
            warnings.append("controller scaled to 0: nothing keeps CoreDNS converged")
        else:
            status = _status_json(facts.get("status_cm"))
            phase = status.get("phase", "unknown")
            if phase == "Error":
                return Result(
                    hop,
                    FAIL,
                    f"controller: {status.get('lastError') or status.get('message') or 'Error'}",
                    f"kubectl -n {desired.namespace} get events --field-selector "
                    f"involvedObject.name={desired.configmap}; " + names.kubectl(f"logs deployment/{names.controller}"),
                    {"controller": status},
                )
            if phase not in ("Converged",):
                warnings.append(f"controller {phase}: {status.get('message', '')}".rstrip(": "))
    if helm.get("status") and helm["status"] != "deployed":
        warnings.append(f"helm status {helm['status']}")
    ready = sum(1 for p in pods if pod_ready(p) and p.get("status", {}).get("phase") == "Running")
    running = sum(1 for p in pods if p.get("status", {}).get("phase") not in ("Succeeded", "Failed"))
    detail = (
        f"{names.release}{' ' + chart if chart else ''} in {names.namespace} ({mode} etcd): "
        f"{ready}/{running} pods ready, "
        + (
            f"controller {phase}"
            if phase
            else ("no controller (hooks only)" if controller is None else "controller at 0")
        )
    )
    data = {"mode": mode, "chart": chart, "zone": desired.zone}
    if warnings:
        fix = names.kubectl(f"scale deployment/{names.controller} --replicas=1") if "scaled to 0" in warnings[0] else ""
        return Result(hop, WARN, detail + "; " + "; ".join(warnings), fix, data)
    return Result(hop, OK, detail, data=data)


def _component_of(pods: list[dict], name: str) -> str:
    for pod in pods:
        if pod.get("metadata", {}).get("name") == name:
            return _component(pod)
    return ""


def _status_json(cm: dict | None) -> dict:
    try:
        return json.loads(((cm or {}).get("data") or {}).get("status.json") or "{}")
    except ValueError:
        return {}


# ---------------------------------------------------------------------------------------------- hop 2

ROUTE_SOURCES = {"HTTPRoute": "gateway-httproute", "GRPCRoute": "gateway-grpcroute", "TLSRoute": "gateway-tlsroute"}


def _annotation(annotations: dict, key: str, prefixes: list[str]) -> str | None:
    for prefix in prefixes:
        if prefix + key in annotations:
            return annotations[prefix + key]
    return None


def _split(value: str | None) -> list[str]:
    return [fqdn(v) for v in (value or "").split(",") if v.strip()]


def _lb_targets(obj: dict) -> list[str]:
    return [
        i.get("ip") or i.get("hostname")
        for i in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if i.get("ip") or i.get("hostname")
    ]


def _ref(obj: dict) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('kind', '?')} {meta.get('namespace', '')}/{meta.get('name', '?')}".replace(" /", " ")


def _wildcard_covers(pattern: str, host: str) -> bool:
    return pattern.startswith("*.") and host.endswith(pattern[1:]) and host.count(".") == pattern.count(".")


def publishers(host: str, facts: dict, settings: dict) -> list[dict]:
    """Every object that names host (or a wildcard over it), with its targets and what excludes it."""
    prefixes = settings["annotation_prefixes"]
    sources = set(settings["sources"])
    found: list[dict] = []

    def consider(obj: dict, kind: str, source: str, hosts: list[str], targets: list[str], extra: list[str]) -> None:
        hosts = [fqdn(h) for h in hosts if h]
        exact = host in hosts
        wildcards = [h for h in hosts if _wildcard_covers(h, host)]
        if not exact and not wildcards:
            return
        annotations = obj.get("metadata", {}).get("annotations") or {}
        excluded = list(extra)
        if source not in sources:
            excluded.insert(0, f"ExternalDNS does not watch {kind}s (sources: {', '.join(sorted(sources))})")
        controller = _annotation(annotations, "controller", prefixes)
        if controller is not None and controller != "dns-controller":
            excluded.append(f"annotation {prefixes[0]}controller={controller} hands it to another controller")
        if settings.get("annotation_filter"):
            match = string_selector_matches(settings["annotation_filter"], annotations)
            if match is False:
                excluded.append(f"its annotations do not match --annotation-filter={settings['annotation_filter']}")
        if settings.get("label_filter"):
            match = string_selector_matches(settings["label_filter"], obj.get("metadata", {}).get("labels"))
            if match is False:
                excluded.append(f"its labels do not match --label-filter={settings['label_filter']}")
        found.append(
            {
                "ref": _ref({**obj, "kind": kind}),
                "kind": kind,
                "namespace": obj.get("metadata", {}).get("namespace", ""),
                "name": obj.get("metadata", {}).get("name", ""),
                "source": source,
                "exact": exact,
                "wildcards": wildcards,
                "targets": targets,
                "excluded": excluded,
            }
        )

    for ing in facts.get("ingresses") or []:
        spec = ing.get("spec") or {}
        annotations = ing.get("metadata", {}).get("annotations") or {}
        hosts = [] if settings.get("ignore_rules") else [r.get("host", "") for r in spec.get("rules") or []]
        if not settings.get("ignore_tls"):
            hosts += [h for t in spec.get("tls") or [] for h in t.get("hosts") or []]
        if not settings.get("ignore_hostname_annotation"):
            hosts += _split(_annotation(annotations, "hostname", prefixes))
        targets = _split(_annotation(annotations, "target", prefixes)) or _lb_targets(ing)
        extra = []
        classes = settings.get("ingress_classes") or []
        if classes:
            cls = spec.get("ingressClassName") or annotations.get("kubernetes.io/ingress.class", "")
            if cls not in classes:
                extra.append(
                    f"its IngressClass is {cls or 'unset'} but ExternalDNS takes only "
                    f"--ingress-class={','.join(classes)}"
                )
        consider(ing, "Ingress", "ingress", hosts, targets, extra)

    for svc in facts.get("services") or []:
        annotations = svc.get("metadata", {}).get("annotations") or {}
        hosts = (
            [] if settings.get("ignore_hostname_annotation") else _split(_annotation(annotations, "hostname", prefixes))
        )
        spec = svc.get("spec") or {}
        kind_of = spec.get("type", "ClusterIP")
        targets = _split(_annotation(annotations, "target", prefixes))
        if not targets:
            if kind_of == "ExternalName":
                targets = [spec.get("externalName", "")] if spec.get("externalName") else []
            elif kind_of == "LoadBalancer":
                targets = _lb_targets(svc)
            else:
                targets = [spec.get("clusterIP")] if spec.get("clusterIP") not in (None, "", "None") else ["(pods)"]
        types = settings.get("service_types") or []
        extra = (
            [f"its type {kind_of} is not in --service-type-filter={','.join(types)}"]
            if types and kind_of not in types
            else []
        )
        consider(svc, "Service", "service", hosts, targets, extra)

    gateways = {
        (g.get("metadata", {}).get("namespace"), g.get("metadata", {}).get("name")): g
        for g in facts.get("gateways") or []
    }
    for kind, source in ROUTE_SOURCES.items():
        for route in (facts.get("routes") or {}).get(kind) or []:
            meta = route.get("metadata", {})
            annotations = meta.get("annotations") or {}
            hosts = list((route.get("spec") or {}).get("hostnames") or [])
            if not settings.get("ignore_hostname_annotation"):
                hosts += _split(_annotation(annotations, "hostname", prefixes))
            targets: list[str] = []
            extra = []
            accepted = [
                p.get("parentRef") or {}
                for p in (route.get("status") or {}).get("parents") or []
                if any(c.get("type") == "Accepted" and c.get("status") == "True" for c in p.get("conditions") or [])
            ]
            if not accepted:
                extra.append("no Gateway has Accepted it (status.parents)")
            for ref in accepted:
                gw = gateways.get((ref.get("namespace") or meta.get("namespace"), ref.get("name")))
                if gw is None:
                    continue
                gw_annotations = gw.get("metadata", {}).get("annotations") or {}
                targets += _split(_annotation(gw_annotations, "target", prefixes)) or [
                    a.get("value") for a in (gw.get("status") or {}).get("addresses") or [] if a.get("value")
                ]
            consider(route, kind, source, hosts, targets, extra)

    for dep in facts.get("dnsendpoints") or []:
        for ep in (dep.get("spec") or {}).get("endpoints") or []:
            consider(dep, "DNSEndpoint", "crd", [ep.get("dnsName", "")], list(ep.get("targets") or []), [])
    return found


def check_source(names: Names, facts: dict) -> Result:
    """The objects that publish HOST: in the zone, not filtered out, with an address.

    facts: host, zone, settings (external_dns_settings), ingresses, services, routes {kind: [...]|None},
    gateways, dnsendpoints (None when the CRD is absent).
    """
    hop = "source"
    host, zone, settings = fqdn(facts["host"]), fqdn(facts["zone"]), facts["settings"]
    label = host.split(".", 1)[0]
    if host.startswith("*."):
        return Result(
            hop,
            FAIL,
            f"{host} is a wildcard: ExternalDNS stores it, but CoreDNS's etcd plugin answers no name from a "
            f"wildcard record ({WILDCARD_ISSUE})",
            f"publish the concrete names instead: list each one as a host in the Ingress rules "
            f"(e.g. app{host[1:]}), or one DNSEndpoint per name",
        )
    if not within(host, zone):
        return Result(
            hop,
            FAIL,
            f"{host} is outside the zone {zone}: ExternalDNS publishes only names under it (--domain-filter={zone})",
            f"use a host under {zone} (e.g. {label}.{zone}), or move the zone: "
            + names.helm_upgrade(f"zone={host.split('.', 1)[1] if '.' in host else host}"),
        )
    desired = facts.get("desired")
    owned = policy.refusal(host, "", desired.cluster_domain) if desired is not None else None
    if owned and "never published" in owned:
        return Result(
            hop,
            FAIL,
            f"{owned}; CoreDNS leaves it to the kubernetes plugin and never answers it from etcd",
            f"use a name under the object's namespace instead (e.g. {label}.<namespace>.{fqdn(desired.cluster_domain)})"
            " (README: Who may publish which name)",
        )
    for excluded in settings.get("exclude_domains") or []:
        if within(host, excluded):
            return Result(
                hop,
                FAIL,
                f"{host} is excluded by ExternalDNS's --exclude-domains={excluded}",
                names.kubectl(f"get deployment {names.external_dns} -o yaml   # remove it from externalDNS.extraArgs"),
            )
    found = publishers(host, facts, settings)
    exact = [p for p in found if p["exact"]]
    if not exact:
        wild = [p for p in found if p["wildcards"]]
        if wild:
            w = wild[0]
            return Result(
                hop,
                FAIL,
                f"only the wildcard {w['wildcards'][0]} of {w['ref']} covers {host}: CoreDNS's etcd plugin answers "
                f"no name from a wildcard record ({WILDCARD_ISSUE})",
                f"add {host} itself as a host of {w['ref']} (a rule with host: {host}), or a DNSEndpoint for it",
            )
        kinds = ["Ingress", "Service (hostname annotation)"]
        kinds += [k for k, v in (facts.get("routes") or {}).items() if v is not None]
        if facts.get("dnsendpoints") is not None:
            kinds.append("DNSEndpoint")
        return Result(
            hop,
            FAIL,
            f"no object publishes {host}: no {', '.join(kinds)} has it among its hosts",
            f"add it to an Ingress: spec.rules[].host: {host}   (see what exists: kubectl get ingress -A)",
        )
    eligible = [p for p in exact if not p["excluded"]]
    if not eligible:
        p = exact[0]
        reason = p["excluded"][0]
        if reason.startswith("ExternalDNS does not watch"):
            wanted = sorted({*settings["sources"], p["source"]})
            fix = names.helm_upgrade(f"'externalDNS.sources={{{','.join(wanted)}}}'")
        elif "IngressClass" in reason:
            fix = (
                f"kubectl -n {p['namespace']} patch ingress {p['name']} --type merge -p "
                f'\'{{"spec":{{"ingressClassName":"{settings["ingress_classes"][0]}"}}}}\'   or widen it: '
                + names.helm_upgrade("externalDNS.ingressClass=")
            )
        elif "Accepted" in reason:
            fix = (
                f"kubectl -n {p['namespace']} describe {p['kind'].lower()} {p['name']}"
                "   # status.parents: why the Gateway refuses it"
            )
        elif "controller" in reason:
            fix = (
                f"kubectl -n {p['namespace']} annotate {p['kind'].lower()} {p['name']} "
                f"{settings['annotation_prefixes'][0]}controller-"
            )
        else:
            fix = f"kubectl -n {p['namespace']} edit {p['kind'].lower()} {p['name']}"
        return Result(hop, FAIL, f"{p['ref']} has {host} but is not published: {reason}", fix, {"publishers": exact})
    addressed = [p for p in eligible if p["targets"]]
    if not addressed:
        p = eligible[0]
        if p["kind"] == "Ingress":
            detail = (
                f"{p['ref']} has {host} but no address: status.loadBalancer is empty and it has no target annotation"
            )
            fix = (
                f"kubectl -n {p['namespace']} annotate ingress {p['name']} "
                f"{settings['annotation_prefixes'][0]}target=<address of your ingress controller>"
                "   (or let the ingress controller publish its address in status.loadBalancer)"
            )
        elif p["kind"] in ROUTE_SOURCES:
            detail = f"{p['ref']} has {host} but its Gateway has no address (status.addresses) and no target annotation"
            fix = "kubectl get gateway -A   # the Gateway's controller must report status.addresses"
        else:
            detail = f"{p['ref']} has {host} but no address (status.loadBalancer empty, no target annotation)"
            fix = (
                f"kubectl -n {p['namespace']} annotate {p['kind'].lower()} {p['name']} "
                f"{settings['annotation_prefixes'][0]}target=<address>"
            )
        return Result(hop, FAIL, detail, fix, {"publishers": eligible})
    targets = sorted({t for p in addressed for t in p["targets"]})
    detail = "; ".join(f"{p['ref']}: {host} -> {', '.join(p['targets'])}" for p in addressed)
    breaking = [(p, why) for p in addressed if (why := policy_refusal(host, p["namespace"], facts))]
    if breaking:
        p, why = breaking[0]
        return Result(
            hop,
            WARN,
            f"{detail}; it breaks the publication policy ({why}): admitted before the policy, it is still "
            "published and answered, and helm upgrade stops until it is changed",
            f"kubectl -n {p['namespace']} edit {p['kind'].lower()} {p['name']}   # host under "
            f"{p['namespace']}.{fqdn(facts['desired'].cluster_domain)}; or trust the namespace: "
            + names.helm_upgrade(f"'publicationPolicy.trustedNamespaces={{{p['namespace']}}}'"),
            {"publishers": addressed, "targets": targets},
        )
    return Result(hop, OK, detail, data={"publishers": addressed, "targets": targets})


def publisher_namespaces(host: str, facts: dict) -> set[str]:
    """The namespaces of the objects that have `host` (whose trust the publication policy asks)."""
    return {p["namespace"] for p in publishers(fqdn(host), facts, facts["settings"]) if p.get("namespace")}


def policy_refusal(host: str, namespace: str, facts: dict) -> str | None:
    """Why the publication policy refuses `host` from `namespace` (None: allowed, or no policy)."""
    desired = facts.get("desired")
    if desired is None or not desired.publication_policy:
        return None
    labels = (facts.get("namespace_labels") or {}).get(namespace) or {}
    trusted = policy.is_trusted(namespace, labels, desired.trusted_namespaces, desired.trusted_namespace_label)
    return policy.refusal(host, namespace, desired.cluster_domain, trusted)


# ---------------------------------------------------------------------------------------------- hop 3

_KUBELET_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)\s(.*)$")
_LOGFMT_LEVEL = re.compile(r"\blevel=(\w+)")
_LOGFMT_MSG = re.compile(r'\bmsg="((?:[^"\\]|\\.)*)"|\bmsg=(\S+)')


def parse_timestamp(text: str) -> float | None:
    match = _KUBELET_TS.match(text + " ")
    if not match:
        return None
    base, frac, zone, _ = match.groups()
    iso = base + (f".{frac[:6]}" if frac else "") + ("+00:00" if zone == "Z" else zone)
    return datetime.fromisoformat(iso).timestamp()


def parse_log(text: str) -> list[dict]:
    """Log lines with the kubelet's timestamps (`kubectl logs --timestamps`): time, level, message."""
    entries = []
    for line in (text or "").splitlines():
        match = _KUBELET_TS.match(line)
        when, rest = (parse_timestamp(line), match.group(4)) if match else (None, line)
        level, msg = "", rest
        stripped = rest.strip()
        if stripped.startswith("{"):
            try:
                obj = json.loads(stripped)
                level, msg = str(obj.get("level", "")), str(obj.get("msg", rest))
            except ValueError:
                pass
        else:
            lm = _LOGFMT_LEVEL.search(rest)
            mm = _LOGFMT_MSG.search(rest)
            if lm:
                level = lm.group(1)
            if mm:
                msg = (mm.group(1) if mm.group(1) is not None else mm.group(2)).replace('\\"', '"')
            bracket = re.match(r"^\[(ERROR|FATAL|WARNING|INFO)\]\s*(.*)", stripped)
            if bracket:
                level, msg = bracket.group(1).lower(), bracket.group(2)
        entries.append({"time": when, "level": level.lower(), "msg": msg, "line": rest})
    return entries


def check_external_dns(names: Names, facts: dict) -> Result:
    """ExternalDNS runs, syncs and reports no errors since its last sync.

    facts: deployment, pods, log (with kubelet timestamps), now (epoch), settings, host (or None).
    """
    hop = "external-dns"
    deploy = facts.get("deployment")
    if deploy is None:
        return Result(hop, FAIL, f"Deployment {names.external_dns} is missing", names.helm_upgrade())
    settings = facts.get("settings") or external_dns_settings(container_args(deploy))
    if _deploy_replicas(deploy) == 0:
        return Result(
            hop,
            FAIL,
            "ExternalDNS is scaled to 0: no record is written, changed or deleted",
            names.kubectl(f"scale deployment/{names.external_dns} --replicas=1"),
        )
    if settings.get("dry_run"):
        return Result(
            hop,
            FAIL,
            "ExternalDNS runs with --dry-run: it writes nothing",
            "remove --dry-run from externalDNS.extraArgs: " + names.helm_upgrade("'externalDNS.extraArgs={}'"),
        )
    entries = parse_log(facts.get("log", ""))
    errors = [e for e in entries if e["level"] in ("error", "fatal")]
    pods = facts.get("pods") or []
    problems = [p for pod in pods for p in pod_problems(pod)]
    if problems:
        p = problems[0]
        last = f"; last error: {errors[-1]['msg']}" if errors else ""
        return Result(hop, FAIL, f"ExternalDNS: {describe_problem(p)}{last}", problem_fix(p, names))
    if _ready_replicas(deploy) < _deploy_replicas(deploy):
        return Result(
            hop,
            FAIL,
            f"ExternalDNS {_ready_replicas(deploy)}/{_deploy_replicas(deploy)} ready",
            names.kubectl(f"describe deployment {names.external_dns}"),
        )
    now = facts.get("now") or 0
    syncs = [e for e in entries if any(m in e["msg"] for m in SYNC_MARKERS)]
    last_sync = syncs[-1] if syncs else None
    data: dict = {"errors": len(errors)}
    if last_sync and last_sync["time"]:
        data["last_sync_seconds_ago"] = round(now - last_sync["time"], 1)
    host = facts.get("host")
    if host:
        mentions = [e["msg"] for e in entries if host in e["msg"]]
        if mentions:
            data["last_mention"] = mentions[-1]
    if errors and (last_sync is None or (errors[-1]["time"] or 0) > (last_sync["time"] or 0)):
        message = errors[-1]["msg"]
        if "permission denied" in message:
            fix = names.kubectl(f"logs {names.etcd}-0 -c auth   # etcd users and roles")
        elif any(s in message for s in ("deadline exceeded", "connection refused", "no such host", "unavailable")):
            fix = names.kubectl(
                f"get pods -l app.kubernetes.io/component=etcd; kubectl -n {names.namespace} get networkpolicy"
            )
        else:
            fix = names.kubectl(f"logs deployment/{names.external_dns} --since=10m")
        when = f" {age(now - errors[-1]['time'])} ago" if errors[-1]["time"] else ""
        return Result(hop, FAIL, f"ExternalDNS fails to sync{when}: {message}", fix, data)
    if last_sync is None:
        level = settings.get("log_level", "info")
        detail = f"{_ready_replicas(deploy)}/{_deploy_replicas(deploy)} ready; no sync in its recent log"
        if level not in ("info", "debug", "trace"):
            return Result(hop, OK, detail + f" (log level {level} hides them)", data=data)
        return Result(hop, WARN, detail, names.kubectl(f"logs deployment/{names.external_dns} --since=10m"), data)
    when = f"last sync {age(now - last_sync['time'])} ago" if last_sync["time"] else "synced"
    if errors:
        return Result(
            hop,
            WARN,
            f"{_ready_replicas(deploy)}/{_deploy_replicas(deploy)} ready, {when}; "
            f"{plural(len(errors), 'earlier error')} (last: {errors[-1]['msg']})",
            data=data,
        )
    return Result(hop, OK, f"{_ready_replicas(deploy)}/{_deploy_replicas(deploy)} ready, {when}, no errors", data=data)


# ---------------------------------------------------------------------------------------------- hop 4


def key_path(name: str, prefix: str) -> str:
    """The etcd key of a name under the SkyDNS prefix: app.cluster.local -> /skydns/local/cluster/app."""
    return prefix.rstrip("/") + "/" + "/".join(reversed(fqdn(name).split(".")))


def decode_records(kvs: list[dict], prefix: str) -> list[dict]:
    """etcd key/values (text) as records: name (key reversed, targetstrip applied), type, value, owner."""
    records = []
    base = prefix.rstrip("/")
    for kv in kvs:
        key, raw = kv["key"], kv.get("value", "")
        labels = [part for part in key[len(base) :].split("/") if part]
        labels.reverse()
        try:
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError("not an object")
        except ValueError as err:
            records.append({"key": key, "name": ".".join(labels), "type": "?", "value": raw, "error": str(err)})
            continue
        strip = int(value.get("targetstrip") or 0)
        name = ".".join(labels[strip:])
        common = {"key": key, "name": name, "owner": value.get("owner", ""), "ttl": value.get("ttl")}
        if value.get("host"):
            host = value["host"]
            try:
                kind = "AAAA" if ipaddress.ip_address(host).version == 6 else "A"
            except ValueError:
                kind = "CNAME"
            records.append({**common, "type": kind, "value": host})
        if value.get("text"):
            records.append({**common, "type": "TXT", "value": value["text"]})
    return records


def txt_labels(text: str) -> dict:
    """heritage=external-dns,external-dns/owner=X,external-dns/resource=ingress/ns/name -> dict."""
    out = {}
    for part in text.strip('"').split(","):
        key, eq, value = part.partition("=")
        if eq:
            out[key.removeprefix("external-dns/")] = value
    return out


def subtree(records: list[dict], path: str) -> list[dict]:
    return [r for r in records if r["key"] == path or r["key"].startswith(path + "/")]


def txt_name(host: str, record_type: str, txt_prefix: str = "") -> str:
    first, _, rest = host.partition(".")
    name = f"{txt_prefix}{record_type.lower()}-{first}"
    return f"{name}.{rest}" if rest else name


def check_etcd(names: Names, facts: dict) -> Result:
    """The record under the prefix, decoded to name -> address, its owner and TXT ownership record.

    facts: mode, prefix, zone, host (or None), kvs ([{key, value}] or None), error, owner_id, txt_prefix,
    targets (what the source hop found, or None).
    """
    hop = "etcd"
    mode, prefix, zone = facts.get("mode", "bundled"), facts["prefix"], fqdn(facts["zone"])
    host = fqdn(facts["host"]) if facts.get("host") else None
    if mode != "bundled":
        where = key_path(host, prefix) if host else key_path(zone, prefix)
        return Result(
            hop,
            SKIP,
            f"etcd mode {mode}: doctor reads records only from the bundled etcd (by exec into its pod as root); "
            f"read {where} with your etcd credentials: etcdctl get --prefix {where}",
        )
    if facts.get("error"):
        err = facts["error"]
        if "authentication" in err or "permission denied" in err or "user name" in err:
            fix = names.kubectl(f"logs {names.etcd}-0 -c auth   # root password in Secret {names.etcd_root}")
        else:
            fix = names.kubectl(
                f"get pods -l app.kubernetes.io/component=etcd; "
                f"kubectl -n {names.namespace} logs {names.etcd}-0 -c etcd"
            )
        return Result(hop, FAIL, f"cannot read etcd: {err}", fix)
    records = decode_records(facts.get("kvs") or [], prefix)
    broken = [r for r in records if r.get("error")]
    zone_path = key_path(zone, prefix)
    if host is None:
        if broken:
            b = broken[0]
            return Result(
                hop,
                FAIL,
                f"key {b['key']} holds no valid record ({b['error']}): CoreDNS answers SERVFAIL for names above it",
                names.kubectl(
                    f"exec {names.etcd}-0 -c etcd -- etcdctl ... del {b['key']}   # see README: Troubleshooting"
                ),
            )
        addresses = [r for r in records if r["type"] in ("A", "AAAA", "CNAME")]
        owners = sorted({r["owner"] for r in addresses if r["owner"]})
        hosts = sorted({r["name"] for r in addresses})
        return Result(
            hop,
            OK,
            f"{plural(len(addresses), 'record')} for {plural(len(hosts), 'name')} under {zone_path}"
            + (f" (owners: {', '.join(owners)})" if owners else ""),
            data={"names": len(hosts), "records": len(addresses)},
        )
    path = key_path(host, prefix)
    under = subtree(records, path)
    bad = [r for r in under if r.get("error")]
    if bad:
        return Result(
            hop,
            FAIL,
            f"key {bad[0]['key']} holds no valid record ({bad[0]['error']}): CoreDNS answers SERVFAIL for {host}",
            f"delete it: etcdctl del {bad[0]['key']}   (README: Troubleshooting, etcd)",
        )
    answers = [r for r in under if r["type"] in ("A", "AAAA", "CNAME")]
    owner_id = facts.get("owner_id") or ""
    txts = [
        r
        for r in records
        if r["type"] == "TXT"
        and r["name"] in {txt_name(host, t, facts.get("txt_prefix", "")) for t in ("A", "AAAA", "CNAME")} | {host}
    ]
    ownership = [txt_labels(r["value"]) for r in txts if "heritage=external-dns" in r["value"]]
    data: dict = {"key": path, "records": {host: sorted({r["value"] for r in answers})}}
    if ownership:
        data["ownership"] = ownership
    if not answers:
        believed = [o for o in ownership if o.get("owner") == owner_id]
        why = (
            f" although its TXT ownership record ({believed[0].get('resource', '?')}) says ExternalDNS wrote it"
            if believed
            else ""
        )
        return Result(
            hop,
            FAIL,
            f"no record for {host} in etcd (nothing under {path}){why}",
            names.kubectl(f"rollout restart deployment/{names.external_dns}")
            + f"   # it writes every missing record on its first sync; then: kubectl -n {names.namespace} "
            f"logs deployment/{names.external_dns} | grep {host}",
            data,
        )
    values = sorted({r["value"] for r in answers})
    foreign = sorted({r["owner"] for r in answers if r["owner"] and owner_id and r["owner"] != owner_id})
    targets = facts.get("targets")
    own = [r for r in answers if r["name"] == host]
    if targets is not None and sorted(set(targets)) != sorted({r["value"] for r in own} or set(values)):
        hint = (
            f"; the record belongs to owner {', '.join(foreign)} (ExternalDNS with --coredns-strictly-owned never "
            "changes another owner's record)"
            if foreign
            else ""
        )
        fix = (
            f"delete the foreign record: etcdctl del --prefix {path}   (README: Troubleshooting, etcd)"
            if foreign
            else names.kubectl(f"logs deployment/{names.external_dns} --since=10m | grep {host}")
        )
        return Result(
            hop, FAIL, f"etcd has {host} -> {', '.join(values)}, its objects say {', '.join(targets)}{hint}", fix, data
        )
    detail = f"{host} -> {', '.join(values)} (key {own[0]['key'] if own else path}"
    detail += f", owner {own[0]['owner']}" if own and own[0]["owner"] else ""
    detail += ", TXT ownership record present)" if ownership else ")"
    deeper = sorted({r["name"] for r in answers if r["name"] != host})
    if deeper:
        detail += (
            f"; CoreDNS also answers {host} with the records of {', '.join(deeper)} (the etcd plugin returns a subtree)"
        )
    return Result(hop, OK, detail, data=data)


# ---------------------------------------------------------------------------------------------- hop 5


def _port_matches(ports: list[dict] | None, port: int, port_name: str) -> bool:
    if not ports:
        return True
    for p in ports:
        if (p.get("protocol") or "TCP") != "TCP":
            continue
        value = p.get("port")
        if value is None:
            return True
        if isinstance(value, str) and not value.isdigit():
            if value == port_name:
                return True
            continue
        start = int(value)
        if start <= port <= int(p.get("endPort") or start):
            return True
    return False


def _peer_matches(peer: dict, policy_ns: str, side: dict) -> bool:
    block = peer.get("ipBlock")
    if block:
        try:
            net = ipaddress.ip_network(block.get("cidr", ""), strict=False)
            excepts = [ipaddress.ip_network(e, strict=False) for e in block.get("except") or []]
        except ValueError:
            return False
        for ip in side.get("ips") or []:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                continue
            if (
                addr.version == net.version
                and addr in net
                and not any(addr in e for e in excepts if e.version == net.version)
            ):
                return True
        return False
    ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
    ns_ok = side["namespace"] == policy_ns if ns_sel is None else selector_matches(ns_sel, side.get("namespace_labels"))
    return ns_ok and (pod_sel is None or selector_matches(pod_sel, side.get("labels")))


def _policy_types(policy: dict) -> list[str]:
    spec = policy.get("spec") or {}
    return spec.get("policyTypes") or (["Ingress"] + (["Egress"] if spec.get("egress") else []))


def blocking_policies(
    direction: str, policies: list[dict], target: dict, peer: dict, port: int, port_name: str
) -> list[str]:
    """Names of the NetworkPolicies that isolate target (in direction) and admit peer nowhere; [] if allowed.

    target/peer: {namespace, labels, namespace_labels, ips}.
    """
    selecting = [
        p
        for p in policies
        if p.get("metadata", {}).get("namespace") == target["namespace"]
        and direction in _policy_types(p)
        and selector_matches((p.get("spec") or {}).get("podSelector"), target.get("labels"))
    ]
    if not selecting:
        return []
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for p in selecting:
        for rule in (p.get("spec") or {}).get(rules_key) or []:
            if not _port_matches(rule.get("ports"), port, port_name):
                continue
            peers = rule.get(peers_key)
            if not peers or any(_peer_matches(x, target["namespace"], peer) for x in peers):
                return []
    return [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in selecting]


# Errors of an etcd client that is being closed: CoreDNS closes the old server's client when `reload` swaps
# in a new Corefile (and on shutdown) while queries may still be in flight on it. They say nothing about the
# client that serves now.
_CLOSING_CLIENT = ("client connection is closing",)


def _etcd_errors(logs: dict, zone: str, now: float) -> tuple[list[dict], list[dict]]:
    """(recent, older) CoreDNS error lines about etcd or names in the zone. Errors of a client being closed
    (a reload, a shutdown) and errors logged before the pod's last completed reload count as older: they
    belong to a configuration the pod no longer runs."""
    zone_re = re.compile(r"(^|[\s.])" + re.escape(fqdn(zone)) + r"\.?\s")
    recent, older = [], []
    for pod, text in (logs or {}).items():
        entries = parse_log(text)
        reloads = [e["time"] for e in entries if e["time"] is not None and "Reloading complete" in e["line"]]
        reloaded = max(reloads, default=None)
        for e in entries:
            if e["level"] not in ("error", "fatal"):
                continue
            if "plugin/etcd" in e["line"] or ("plugin/errors" in e["line"] and zone_re.search(e["line"] + " ")):
                item = {**e, "pod": pod}
                stale = any(marker in e["line"] for marker in _CLOSING_CLIENT) or (
                    reloaded is not None and e["time"] is not None and e["time"] <= reloaded
                )
                fresh = e["time"] is None or now - e["time"] <= RECENT_SECONDS
                (recent if fresh and not stale else older).append(item)
    return recent, older


def _heal_fix(names: Names, controller: dict | None, desired: Desired) -> str:
    if controller is None:
        return names.helm_upgrade() + "   # no controller: the post-upgrade hook Job applies the patch"
    if _deploy_replicas(controller) == 0:
        return (
            names.kubectl(f"scale deployment/{names.controller} --replicas=1") + "   # it puts it back within seconds"
        )
    return (
        names.kubectl(f"logs deployment/{names.controller}")
        + f"; kubectl -n {desired.namespace} get events --field-selector involvedObject.name={desired.configmap}"
    )


def _coredns_container(deploy: dict, name: str) -> dict:
    containers = deploy.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    for c in containers:
        if c.get("name") == name:
            return c
    return containers[0] if len(containers) == 1 else {}


def check_coredns(names: Names, facts: dict) -> Result:
    """The managed server block for the zone and its etcd plugin, the Deployment's mounts and
    host alias, the pods, a path to etcd through NetworkPolicies, and etcd errors in CoreDNS's logs.

    facts: desired (desired.json dict), mode, corefile (text or None), deployment, pods, logs {pod: text},
    controller (Deployment or None), etcd_service, etcd_pods, policies (NetworkPolicies of both namespaces),
    namespace_labels {ns: labels}, secrets {name: True|False|None}, now.
    """
    hop = "coredns"
    desired = desired_of(facts["desired"])
    zone = fqdn(desired.zone)
    controller = facts.get("controller")
    heal = _heal_fix(names, controller, desired)
    where = f"ConfigMap {desired.namespace}/{desired.configmap}"
    text = facts.get("corefile")
    if text is None:
        return Result(
            hop,
            FAIL,
            f"{where} has no Corefile",
            f"kubectl -n {desired.namespace} get configmap {desired.configmap} -o yaml",
        )
    try:
        block = corefile.managed_block(text)
    except corefile.CorefileError as err:
        return Result(
            hop, FAIL, f"the Corefile: {err}", f"kubectl -n {desired.namespace} edit configmap {desired.configmap}"
        )
    if block is None:
        return Result(
            hop, FAIL, f"no k2s-dns server block for {zone} in the Corefile: names from etcd get NXDOMAIN", heal
        )
    label = f"'{block.label}' (line {block.line})"
    if not any(fqdn(z) == zone for a in corefile.addresses(block) for z in a.zones):
        return Result(hop, FAIL, f"the k2s-dns server block {label} is not for {zone}, the release's zone", heal)
    etcd = next(
        (d for d in block.directives if d.name == "etcd" and any(within(zone, a) for a in d.args or ["."])), None
    )
    if etcd is None:
        return Result(hop, FAIL, f"the k2s-dns server block {label} holds no etcd plugin for {zone}", heal)
    children = {c.name: c.args for c in etcd.children or []}
    if children.get("path", [""])[0].rstrip("/") != desired.path.rstrip("/"):
        return Result(
            hop,
            FAIL,
            f"the etcd block reads path {children.get('path', ['(none)'])[0]}, the release writes under {desired.path}",
            heal,
        )
    deploy = facts.get("deployment")
    if deploy is None:
        return Result(
            hop,
            FAIL,
            f"Deployment {desired.namespace}/{desired.deployment} is missing",
            f"kubectl -n {desired.namespace} get deployments   # coredns.deployment names the cluster's CoreDNS",
        )
    pod_spec = deploy.get("spec", {}).get("template", {}).get("spec", {})
    if desired.tls:
        volumes = {v.get("name"): (v.get("secret") or {}).get("secretName") for v in pod_spec.get("volumes", [])}
        mounts = {
            m.get("name"): m.get("mountPath")
            for m in _coredns_container(deploy, desired.container).get("volumeMounts", [])
        }
        missing = []
        for volume, secret, path in (
            (CLIENT_VOLUME, desired.client_secret, CERT_DIR),
            (CA_VOLUME, desired.ca_secret, CA_DIR),
        ):
            if volumes.get(volume) != secret:
                missing.append(f"volume {volume} (Secret {secret})")
            if mounts.get(volume) != path:
                missing.append(f"mount {path}")
        if missing:
            return Result(
                hop,
                FAIL,
                f"the CoreDNS Deployment lacks the etcd certificate {', '.join(missing)}: its pods cannot read "
                f"{CERT_DIR}/tls.crt, which the Corefile names, and crash",
                heal,
            )
        for secret, present in (facts.get("secrets") or {}).items():
            if present is False:
                return Result(
                    hop,
                    FAIL,
                    f"Secret {desired.namespace}/{secret}, which CoreDNS mounts, is missing",
                    names.helm_upgrade() + "   # the chart writes the certificates again",
                )
    service = facts.get("etcd_service")
    for alias in desired.host_aliases:
        hostname = alias.split("=", 1)[0]
        ip = ((service or {}).get("spec") or {}).get("clusterIP")
        entries = {h: a.get("ip") for a in pod_spec.get("hostAliases", []) for h in a.get("hostnames", [])}
        if hostname not in entries:
            return Result(hop, FAIL, f"the CoreDNS Deployment has no hostAliases entry for {hostname}", heal)
        if ip and entries[hostname] != ip:
            return Result(
                hop,
                FAIL,
                f"CoreDNS's host alias {hostname} -> {entries[hostname]} is stale: the etcd Service is at {ip}",
                heal,
            )
    pods = facts.get("pods") or []
    problems = [p for pod in pods for p in pod_problems(pod)]
    if problems:
        p = {**problems[0], "namespace": desired.namespace}
        return Result(hop, FAIL, f"CoreDNS {describe_problem(p)}", problem_fix(p, names))
    want = _deploy_replicas(deploy)
    ready = sum(1 for p in pods if pod_ready(p))
    if want and not ready:
        return Result(
            hop,
            FAIL,
            f"no CoreDNS pod is ready (0/{want})",
            f"kubectl -n {desired.namespace} describe deployment {desired.deployment}",
        )
    if facts.get("mode") == "bundled":
        blocked = _blocked_path(facts, desired, names)
        if blocked:
            return blocked
    recent, older = _etcd_errors(facts.get("logs") or {}, zone, facts.get("now") or 0)
    if recent:
        e = recent[-1]
        return Result(
            hop,
            FAIL,
            f"CoreDNS pod {e['pod']} fails to read etcd: {e['msg']}",
            names.kubectl("get pods,networkpolicy")
            + f"; kubectl -n {desired.namespace} logs {e['pod']} | grep -i etcd",
            {"errors": len(recent)},
        )
    detail = (
        f"server block {label} answers {zone} from etcd, "
        + ("certificate mounts present, " if desired.tls else "")
        + f"{ready}/{want} pods ready, no plugin/etcd errors"
    )
    rollout = (deploy.get("status") or {}).get("updatedReplicas", want) != want
    if older or rollout:
        note = (
            f"{plural(len(older), 'etcd error')} earlier in the log (last: {older[-1]['msg']})"
            if older
            else "rollout in progress"
        )
        return Result(hop, WARN, detail.replace(", no plugin/etcd errors", "") + f"; {note}")
    return Result(hop, OK, detail)


def _blocked_path(facts: dict, desired: Desired, names: Names) -> Result | None:
    policies = facts.get("policies") or []
    ns_labels = facts.get("namespace_labels") or {}
    deploy = facts.get("deployment") or {}
    coredns = {
        "namespace": desired.namespace,
        "labels": deploy.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}),
        "namespace_labels": ns_labels.get(desired.namespace, {"kubernetes.io/metadata.name": desired.namespace}),
        "ips": [p.get("status", {}).get("podIP") for p in facts.get("pods") or [] if p.get("status", {}).get("podIP")],
    }
    etcd_pods = facts.get("etcd_pods") or []
    service_ip = ((facts.get("etcd_service") or {}).get("spec") or {}).get("clusterIP")
    etcd = {
        "namespace": names.namespace,
        "labels": (etcd_pods[0].get("metadata", {}).get("labels") if etcd_pods else None)
        or {"app.kubernetes.io/instance": names.release, "app.kubernetes.io/component": "etcd"},
        "namespace_labels": ns_labels.get(names.namespace, {"kubernetes.io/metadata.name": names.namespace}),
        "ips": [p.get("status", {}).get("podIP") for p in etcd_pods if p.get("status", {}).get("podIP")]
        + ([service_ip] if service_ip else []),
    }
    enforced = " (where the CNI enforces NetworkPolicy)"
    egress = blocking_policies("Egress", policies, coredns, etcd, ETCD_CLIENT_PORT, "client")
    if egress:
        return Result(
            "coredns",
            FAIL,
            f"NetworkPolicy {', '.join(egress)} isolates CoreDNS's egress and allows none to etcd "
            f"({names.namespace}, TCP {ETCD_CLIENT_PORT}){enforced}",
            f"kubectl -n {desired.namespace} edit networkpolicy {egress[0].split('/', 1)[1]}"
            f"   # add an egress rule to namespace {names.namespace} port {ETCD_CLIENT_PORT}, or delete it",
        )
    ingress = blocking_policies("Ingress", policies, etcd, coredns, ETCD_CLIENT_PORT, "client")
    if ingress:
        labels = coredns["labels"]
        wanted = json.dumps({k: v for k, v in labels.items() if k != "pod-template-hash"}, separators=(",", ":"))
        return Result(
            "coredns",
            FAIL,
            f"NetworkPolicy {', '.join(ingress)} admits no CoreDNS pod ({desired.namespace}, labels "
            f"{wanted}) to etcd's port {ETCD_CLIENT_PORT}{enforced}",
            names.helm_upgrade().replace(
                " --reuse-values", f" --reuse-values --set-json 'networkPolicy.corednsPodLabels={wanted}'"
            ),
        )
    return None


# ---------------------------------------------------------------------------------------------- hop 6


def value_kind(value: str) -> str:
    """A, AAAA or CNAME: what an etcd record's `host` becomes in an answer."""
    try:
        return "AAAA" if ipaddress.ip_address(value).version == 6 else "A"
    except ValueError:
        return "CNAME"


def expected_rdtype(values: list[str]) -> str:
    """The question to ask: AAAA only for a name with nothing but IPv6 addresses."""
    return "AAAA" if values and {value_kind(v) for v in values} == {"AAAA"} else "A"


def _answered(answer: dict, rdtype: str) -> set[str]:
    return {r["value"] for r in answer.get("records") or [] if r["type"] in (rdtype, "CNAME")}


def check_answer(names: Names, facts: dict) -> Result:
    """What CoreDNS answers, asked directly (each pod, the cluster DNS Service, --server), compared with etcd.

    facts: host, expected (addresses), expected_from ("etcd"|"source"), rdtype, answers [{server, what, rcode,
    records, error}], coredns_namespace, coredns_deployment.
    """
    hop = "answer"
    host = fqdn(facts["host"])
    rdtype = facts.get("rdtype") or expected_rdtype(sorted(facts.get("expected") or []))
    # An A question is answered with the IPv4 addresses (and CNAMEs), an AAAA one with the IPv6 ones.
    expected = {v for v in facts.get("expected") or [] if value_kind(v) in (rdtype, "CNAME")}
    answers = facts.get("answers") or []
    reachable = [a for a in answers if not a.get("error")]
    unreachable = [a for a in answers if a.get("error")]
    ns, deploy = facts.get("coredns_namespace", "kube-system"), facts.get("coredns_deployment", "coredns")
    ask_inside = f"kubectl run -it --rm dnscheck --image=busybox:1.36 --restart=Never -- nslookup {host}"
    if not reachable:
        servers = ", ".join(f"{a['what']} {a['server']}" for a in answers) or "none found"
        return Result(
            hop,
            WARN,
            f"CoreDNS not reachable from here ({servers}: {answers[0]['error'] if answers else 'no address'}); "
            "the answer was not checked",
            f"{ask_inside}   (or give a reachable CoreDNS address: --server IP[:PORT])",
        )
    wrong = []
    for a in reachable:
        got = _answered(a, rdtype)
        if (
            a.get("rcode") != "NOERROR"
            or not expected <= got
            or not {g for g in got if g not in expected} <= _cnames(a)
        ):
            wrong.append((a, got))
    if wrong:
        a, got = wrong[0]
        what = f"{a['what']} {a['server']}"
        said = f"{a.get('rcode')} {', '.join(sorted(got)) or '(no records)'}"
        if a.get("rcode") == "NXDOMAIN":
            fix = (
                f"kubectl -n {ns} rollout restart deployment/{deploy}"
                "   # CoreDNS has not loaded the patched Corefile yet (its reload plugin takes up to 2 minutes)"
            )
        elif a.get("rcode") == "SERVFAIL":
            fix = f"kubectl -n {ns} logs deployment/{deploy} | grep -i etcd   # CoreDNS cannot read etcd"
        else:
            fix = (
                "wait for the record TTL and ask again; if it stays: "
                f"kubectl -n {ns} rollout restart deployment/{deploy}"
            )
        others = f" ({len(wrong) - 1} more servers wrong)" if len(wrong) > 1 else ""
        source = facts.get("expected_from", "etcd")
        return Result(
            hop,
            FAIL,
            f"{what} answers {host} {rdtype} with {said}; {source} has {', '.join(sorted(expected))}{others}",
            fix,
            {"answers": answers},
        )
    origin = facts.get("expected_from", "etcd")
    verb = "answers" if len(reachable) == 1 else "answer"
    detail = f"{plural(len(reachable), 'server')} {verb} {host} -> {', '.join(sorted(expected))}, as {origin} has it"
    if unreachable:
        return Result(
            hop,
            WARN,
            detail + f"; {len(unreachable)} not reachable from here ({', '.join(a['server'] for a in unreachable)})",
            data={"answers": answers},
        )
    return Result(hop, OK, detail, data={"answers": answers})


def _cnames(answer: dict) -> set[str]:
    """Addresses reached through a CNAME in the answer are the target's, not extra records."""
    if not any(r["type"] == "CNAME" for r in answer.get("records") or []):
        return set()
    return {r["value"] for r in answer.get("records") or []}


# ---------------------------------------------------------------------------------------------- local


def check_workstation(names: Names, facts: dict) -> Result:
    """Whether this machine's own resolver (getaddrinfo) reaches CoreDNS for the zone: never FAIL.

    facts: host, zone, expected, lookup {addresses, error}, dns_ip (an address of CoreDNS to suggest), platform.
    """
    hop = "workstation"
    host, zone = fqdn(facts["host"]), fqdn(facts["zone"])
    expected = set(facts.get("expected") or [])
    lookup = facts.get("lookup") or {}
    got = set(lookup.get("addresses") or [])
    if got and (not expected or got & expected):
        return Result(hop, OK, f"this machine resolves {host} -> {', '.join(sorted(got))}, as CoreDNS does")
    ip = facts.get("dns_ip") or "<CoreDNS IP>"
    if (facts.get("platform") or "").startswith("win"):
        fix = f'Add-DnsClientNrptRule -Namespace ".{zone}" -NameServers "{ip}"   (README: From the workstation)'
    else:
        fix = (
            f"resolvectl dns <interface> {ip}; resolvectl domain <interface> '~{zone}'   (README: From the workstation)"
        )
    said = lookup.get("error") or f"it says {', '.join(sorted(got))}"
    return Result(hop, WARN, f"this machine's resolver does not reach CoreDNS for {zone} ({said})", fix)
