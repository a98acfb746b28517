"""What the chart renders for a matrix of values."""

from __future__ import annotations

import base64
import json

import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from .conftest import KUBE_VERSION, find, pod_specs

MATRIX = {
    "defaults": {},
    "external-etcd": {
        "etcd": {
            "mode": "external",
            "external": {
                "endpoints": ["https://10.0.0.5:2379", "https://10.0.0.6:2379"],
                "caSecret": "my-etcd-ca",
                "clientSecret": "my-etcd-client",
            },
        }
    },
    "http-only": {"etcd": {"tls": False}},
    "three-members": {"etcd": {"bundled": {"replicas": 3, "persistence": {"enabled": True, "storageClass": "fast"}}}},
    "registry-override": {
        "global": {"imageRegistry": "registry.local:5000", "imagePullSecrets": [{"name": "regcred"}]}
    },
    "service-source": {"externalDNS": {"sources": ["ingress", "service"], "txtOwnerId": "k2s", "events": False}},
    "service-all-types": {"externalDNS": {"sources": ["service"], "serviceTypes": []}},
    "httproute-source": {"externalDNS": {"sources": ["gateway-httproute"]}},
    "grpcroute-source": {"externalDNS": {"sources": ["ingress", "gateway-grpcroute"]}},
    "tlsroute-source": {"externalDNS": {"sources": ["gateway-tlsroute"]}},
    "crd-source": {"externalDNS": {"sources": ["crd"]}},
    "every-source": {
        "externalDNS": {
            "sources": ["ingress", "service", "gateway-httproute", "gateway-grpcroute", "gateway-tlsroute", "crd"]
        }
    },
    "cluster-etcd": {"etcd": {"mode": "cluster"}},
    "cluster-etcd-existing-secret": {
        "etcd": {"mode": "cluster", "cluster": {"existingSecret": "mine", "endpoints": ["https://10.0.0.2:2379"]}}
    },
    "no-patch": {"coredns": {"patch": {"enabled": False}}, "networkPolicy": {"enabled": False}},
    "no-etcd-auth": {"etcd": {"bundled": {"auth": {"enabled": False}}}},
    "hooks-only": {"coredns": {"reconcile": {"enabled": False}}},
    "external-etcd-http": {"etcd": {"mode": "external", "external": {"endpoints": ["http://10.0.0.5:2379"]}}},
    "gitops-existing-secrets": {
        "etcd": {
            "bundled": {
                "existingSecrets": {"server": "s", "peer": "p", "externalDNS": "e", "rootPassword": "r"},
            }
        }
    },
}


@pytest.fixture(params=sorted(MATRIX), ids=str)
def rendered(request, render) -> tuple[str, list[dict]]:
    return request.param, render(MATRIX[request.param])


def by_kind(objects: list[dict]) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {}
    for obj in objects:
        kinds.setdefault(obj["kind"], []).append(obj["metadata"]["name"])
    return kinds


def test_default_render_has_every_part(render):
    objects = render()
    kinds = by_kind(objects)
    assert kinds["StatefulSet"] == ["k2s-dns-etcd"]
    assert sorted(kinds["Service"]) == ["k2s-dns-etcd", "k2s-dns-etcd-headless"]
    assert sorted(kinds["Deployment"]) == ["k2s-dns-controller", "k2s-dns-external-dns"]
    assert kinds["Job"] == ["k2s-dns-coredns-patch-remove"]
    assert kinds["Lease"] == ["k2s-dns-controller"]
    assert sorted(kinds["ConfigMap"]) == ["k2s-dns-controller-status", "k2s-dns-coredns-desired"]
    assert kinds["NetworkPolicy"] == ["k2s-dns-etcd"]
    assert kinds["PodDisruptionBudget"] == ["k2s-dns-etcd"]
    assert kinds["Pod"] == ["k2s-dns-test"] and kinds["Ingress"] == ["k2s-dns-test"]
    assert len(kinds["Secret"]) == 7


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_every_object_is_valid_kubernetes_1_34(case, render):
    for obj in render(MATRIX[case]):
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_every_object_has_standard_labels(rendered):
    _, objects = rendered
    for obj in objects:
        labels = obj["metadata"]["labels"]
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/version",
            "helm.sh/chart",
        ):
            assert key in labels, f"{obj['kind']}/{obj['metadata']['name']} lacks label {key}"


# The cluster-mode certificate Job reads kubeadm's root-only etcd CA key from the node: documented exception.
CERT_PODS = ("k2s-dns-etcd-certs-issue", "k2s-dns-etcd-certs-renew")


def test_every_pod_meets_restricted_pod_security(rendered):
    _, objects = rendered
    for name, spec in pod_specs(objects):
        if name in CERT_PODS:
            continue
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"] + spec.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"]["memory"], name
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), name


def test_only_pods_that_call_the_api_get_a_token(rendered):
    _, objects = rendered
    for name, spec in pod_specs(objects):
        wants_token = any(part in name for part in ("external-dns", "coredns-patch", "etcd-certs", "controller"))
        assert spec.get("automountServiceAccountToken") is wants_token, name


def test_images_are_pinned_and_overridable(rendered):
    case, objects = rendered
    for name, spec in pod_specs(objects):
        for container in spec["containers"]:
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image
            if case == "registry-override":
                assert image.startswith("registry.local:5000/"), image
                assert spec["imagePullSecrets"] == [{"name": "regcred"}], name


def test_default_upstream_images(render):
    images = {c["image"] for _, spec in pod_specs(render()) for c in spec["containers"]}
    assert "registry.k8s.io/external-dns/external-dns:v0.23.0" in images
    assert "registry.k8s.io/etcd:3.6.5-0" in images


def args_of(objects: list[dict], kind: str, name: str) -> list[str]:
    return find(objects, kind, name)["spec"]["template"]["spec"]["containers"][0]["args"]


def env_of(objects: list[dict], name: str) -> dict[str, str]:
    container = find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_external_dns_defaults(render):
    objects = render()
    args = args_of(objects, "Deployment", "k2s-dns-external-dns")
    for expected in (
        "--source=ingress",
        "--provider=coredns",
        "--registry=txt",
        "--txt-owner-id=k2s-dns",
        "--policy=sync",
        "--events",
        "--domain-filter=cluster.local",
        "--coredns-prefix=/skydns/",
        "--coredns-strictly-owned",
        "--min-event-sync-interval=1s",
        # v0.22 changed the default prefix to external-dns.kubernetes.io/: both are read.
        "--annotation-prefix=external-dns.kubernetes.io/",
        "--enable-legacy-annotation-prefix",
        "--managed-record-types=TXT",
    ):
        assert expected in args
    assert [a for a in args if a.startswith("--source=")] == ["--source=ingress"]
    assert not [a for a in args if a.startswith("--service-type-filter")]
    env = env_of(objects, "k2s-dns-external-dns")
    assert env["ETCD_URLS"] == "https://k2s-dns-etcd.k2s-dns.svc.cluster.local:2379"
    assert env["ETCD_CERT_FILE"].endswith("tls.crt") and env["ETCD_KEY_FILE"].endswith("tls.key")
    assert env["ETCD_CA_FILE"].endswith("ca.crt")


def test_external_dns_waits_for_etcd_with_its_own_endpoints_and_certificate(rendered):
    """The init container reads exactly what ExternalDNS reads, so "etcd ready" means ready for ExternalDNS."""
    case, objects = rendered
    spec = find(objects, "Deployment", "k2s-dns-external-dns")["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    (main,) = spec["containers"]
    assert init["name"] == "wait-for-etcd" and init["command"] == ["python3", "-m", "k2s_dns.etcd_wait"]
    assert init["image"].rsplit("/", 1)[-1].startswith("k2s-dns-hook:"), case
    assert [e for e in init["env"] if e["name"].startswith("ETCD_")] == main["env"], case
    assert init.get("volumeMounts") == main.get("volumeMounts"), case
    assert init["resources"]["limits"]["memory"], case


def test_waiting_for_etcd_can_be_turned_off(render):
    spec = find(render({"externalDNS": {"waitForEtcd": {"enabled": False}}}), "Deployment", "k2s-dns-external-dns")
    assert "initContainers" not in spec["spec"]["template"]["spec"]


LIST_WATCH = ["list", "watch"]
INGRESS_RULE = {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": LIST_WATCH}
CRD_RULES = [
    {"apiGroups": ["externaldns.k8s.io"], "resources": ["dnsendpoints"], "verbs": LIST_WATCH},
    {"apiGroups": ["externaldns.k8s.io"], "resources": ["dnsendpoints/status"], "verbs": ["update"]},
]


def gateway_rules(*routes: str) -> list[dict]:
    return [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": LIST_WATCH},
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["gateways", *routes], "verbs": LIST_WATCH},
    ]


# Exactly what each source's informers list and watch in ExternalDNS v0.23 (source/*.go), nothing more.
EXTERNAL_DNS_RULES = {
    "service-source": [INGRESS_RULE, {"apiGroups": [""], "resources": ["services"], "verbs": LIST_WATCH}],
    "service-all-types": [
        {"apiGroups": [""], "resources": ["services", "pods", "nodes"], "verbs": LIST_WATCH},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": LIST_WATCH},
    ],
    "httproute-source": gateway_rules("httproutes"),
    "grpcroute-source": [INGRESS_RULE, *gateway_rules("grpcroutes")],
    "tlsroute-source": gateway_rules("tlsroutes"),
    "crd-source": CRD_RULES,
    "every-source": [
        INGRESS_RULE,
        {"apiGroups": [""], "resources": ["services", "namespaces"], "verbs": LIST_WATCH},
        {
            "apiGroups": ["gateway.networking.k8s.io"],
            "resources": ["gateways", "httproutes", "grpcroutes", "tlsroutes"],
            "verbs": LIST_WATCH,
        },
        *CRD_RULES,
    ],
}


def test_external_dns_rbac_is_exactly_what_its_sources_read(rendered):
    case, objects = rendered
    role = find(objects, "ClusterRole", "k2s-dns-external-dns")
    assert role["rules"] == EXTERNAL_DNS_RULES.get(case, [INGRESS_RULE])
    writes = [rule for rule in role["rules"] if set(rule["verbs"]) - {"list", "watch"}]
    assert writes == ([CRD_RULES[1]] if "crd" in MATRIX[case].get("externalDNS", {}).get("sources", []) else [])
    binding = find(objects, "ClusterRoleBinding", "k2s-dns-external-dns")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "k2s-dns-external-dns", "namespace": "k2s-dns"}]


@pytest.mark.parametrize(
    "sources",
    [
        ["service"],
        ["gateway-httproute"],
        ["gateway-grpcroute"],
        ["gateway-tlsroute"],
        ["crd"],
        ["ingress", "service", "gateway-httproute", "gateway-grpcroute", "gateway-tlsroute", "crd"],
    ],
    ids="+".join,
)
def test_each_source_is_passed_to_external_dns(sources, render):
    args = args_of(render({"externalDNS": {"sources": sources}}), "Deployment", "k2s-dns-external-dns")
    assert [a for a in args if a.startswith("--source=")] == [f"--source={s}" for s in sources]
    assert "--policy=sync" in args and "--provider=coredns" in args
    filters = [a for a in args if a.startswith("--service-type-filter=")]
    assert filters == (["--service-type-filter=LoadBalancer"] if "service" in sources else [])


def test_service_types_become_filters(render):
    values = {"externalDNS": {"sources": ["service"], "serviceTypes": ["LoadBalancer", "ExternalName"]}}
    objects = render(values)
    args = args_of(objects, "Deployment", "k2s-dns-external-dns")
    assert [a for a in args if a.startswith("--service-type-filter=")] == [
        "--service-type-filter=LoadBalancer",
        "--service-type-filter=ExternalName",
    ]
    # Neither type makes ExternalDNS read Pods, EndpointSlices or Nodes.
    assert find(objects, "ClusterRole", "k2s-dns-external-dns")["rules"] == [
        {"apiGroups": [""], "resources": ["services"], "verbs": LIST_WATCH}
    ]
    node_port = render({"externalDNS": {"sources": ["service"], "serviceTypes": ["NodePort"]}})
    assert find(node_port, "ClusterRole", "k2s-dns-external-dns")["rules"] == EXTERNAL_DNS_RULES["service-all-types"]


@pytest.mark.parametrize(
    ("external_dns", "expected", "unexpected"),
    [
        ({}, ["--annotation-prefix=external-dns.kubernetes.io/", "--enable-legacy-annotation-prefix"], []),
        (
            {"legacyAnnotationPrefix": False},
            ["--annotation-prefix=external-dns.kubernetes.io/"],
            ["--enable-legacy-annotation-prefix"],
        ),
        # The legacy prefix as the only one: ExternalDNS refuses the legacy flag with it, so it is left out.
        (
            {"annotationPrefix": "external-dns.alpha.kubernetes.io/"},
            ["--annotation-prefix=external-dns.alpha.kubernetes.io/"],
            ["--enable-legacy-annotation-prefix"],
        ),
        (
            {"annotationPrefix": "dns.example.com/"},
            ["--annotation-prefix=dns.example.com/", "--enable-legacy-annotation-prefix"],
            [],
        ),
    ],
    ids=["defaults", "new-only", "legacy-only", "custom"],
)
def test_annotation_prefix(external_dns, expected, unexpected, render):
    args = args_of(render({"externalDNS": external_dns}), "Deployment", "k2s-dns-external-dns")
    assert [a for a in args if "annotation-prefix" in a] == expected
    for arg in unexpected:
        assert arg not in args


def test_settings_missing_from_an_older_release_get_the_defaults(render):
    # helm upgrade --reuse-values from a chart before ExternalDNS v0.23 reuses values without these keys
    # (null removes a key, as that does): existing alpha annotations must keep working all the same.
    missing = dict.fromkeys(
        ["serviceTypes", "managedRecordTypes", "annotationPrefix", "legacyAnnotationPrefix", "recordTTL"]
    )
    objects = render({"externalDNS": {"sources": ["ingress", "service"], **missing}})
    args = args_of(objects, "Deployment", "k2s-dns-external-dns")
    defaults = args_of(
        render({"externalDNS": {"sources": ["ingress", "service"]}}), "Deployment", "k2s-dns-external-dns"
    )
    assert args == defaults
    assert "--enable-legacy-annotation-prefix" in args and "--service-type-filter=LoadBalancer" in args
    assert find(objects, "ClusterRole", "k2s-dns-external-dns")["rules"] == EXTERNAL_DNS_RULES["service-source"]


@pytest.mark.parametrize(
    ("record_ttl", "expected"), [(None, ["--min-ttl=5s"]), (60, ["--min-ttl=60s"]), (1, ["--min-ttl=1s"]), (0, [])]
)
def test_record_ttl_is_passed_as_min_ttl(record_ttl, expected, render):
    # --min-ttl gives every record whose object has no ttl annotation this TTL; the annotation still wins.
    values = {} if record_ttl is None else {"externalDNS": {"recordTTL": record_ttl}}
    args = args_of(render(values), "Deployment", "k2s-dns-external-dns")
    assert [a for a in args if a.startswith("--min-ttl")] == expected


@pytest.mark.parametrize("policy", ["sync", "upsert-only", "create-only"])
def test_policy_is_always_explicit(policy, render):
    # ExternalDNS >= v0.22 has no default --policy.
    args = args_of(render({"externalDNS": {"policy": policy}}), "Deployment", "k2s-dns-external-dns")
    assert [a for a in args if a.startswith("--policy")] == [f"--policy={policy}"]


def test_managed_record_types(render):
    args = args_of(
        render({"externalDNS": {"managedRecordTypes": ["A", "CNAME"]}}), "Deployment", "k2s-dns-external-dns"
    )
    assert [a for a in args if a.startswith("--managed-record-types")] == [
        "--managed-record-types=A",
        "--managed-record-types=CNAME",
    ]


def test_dnsendpoint_crd_ships_with_the_chart(render):
    crds = [o for o in render({}, "--include-crds") if o["kind"] == "CustomResourceDefinition"]
    assert [c["metadata"]["name"] for c in crds] == ["dnsendpoints.externaldns.k8s.io"]
    crd = crds[0]
    kubernetes_validate.validate(crd, KUBE_VERSION, strict=True)
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["scope"] == "Namespaced" and crd["spec"]["names"]["kind"] == "DNSEndpoint"


def desired_of(objects: list[dict]) -> dict:
    return json.loads(find(objects, "ConfigMap", "k2s-dns-coredns-desired")["data"]["desired.json"])


@pytest.mark.parametrize("case", ["defaults", "hooks-only"])
def test_hook_rbac_exists_only_while_hooks_run(case, render):
    objects = render(MATRIX[case])
    role = find(objects, "Role", "k2s-dns-coredns-patch")
    assert role["metadata"]["namespace"] == "kube-system"
    for rule in role["rules"]:
        assert rule["resourceNames"] in (
            ["coredns"],
            ["coredns", "node-local-dns"],
            ["etcd-client-for-core-dns", "etcd-ca"],
        )
        assert set(rule["verbs"]) <= {"get", "update"}
    binding = find(objects, "RoleBinding", "k2s-dns-coredns-patch")
    assert binding["subjects"][0]["namespace"] == "k2s-dns"
    hooks = {"defaults": "pre-delete", "hooks-only": "post-install,post-rollback,post-upgrade,pre-delete"}[case]
    for obj in objects:
        if obj["metadata"]["name"].startswith("k2s-dns-coredns-patch") and obj["kind"] != "Job":
            assert obj["metadata"]["annotations"]["helm.sh/hook"] == hooks, obj["kind"]
            assert obj["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"


def test_controller_rbac_is_limited_to_named_objects(render):
    objects = render()
    coredns = find(objects, "Role", "k2s-dns-controller-coredns")
    assert coredns["metadata"]["namespace"] == "kube-system"
    for rule in coredns["rules"]:
        if rule["resources"] == ["events"]:
            assert rule["verbs"] == ["create"]
            continue
        assert rule["resourceNames"] in (
            ["coredns"],
            ["coredns", "node-local-dns"],
            ["etcd-client-for-core-dns", "etcd-ca"],
        )
        assert "update" not in rule["verbs"] or rule["resources"] != ["secrets"]
    release = find(objects, "Role", "k2s-dns-controller")
    for rule in release["rules"]:
        assert rule["resourceNames"], rule
    bindings = {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in objects if b["kind"] == "RoleBinding"}
    assert {("kube-system", "k2s-dns-controller-coredns"), ("k2s-dns", "k2s-dns-controller")} <= bindings


def test_controller_runs_with_probes_on_linux(render):
    objects = render()
    spec = find(objects, "Deployment", "k2s-dns-controller")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["command"] == ["python3", "-m", "k2s_dns.controller"]
    assert "--desired=k2s-dns/k2s-dns-coredns-desired" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_hooks_only_mode_applies_after_install_upgrade_and_rollback(render):
    objects = render(MATRIX["hooks-only"])
    assert not [o for o in objects if o["metadata"]["name"].startswith("k2s-dns-controller")]
    apply = find(objects, "Job", "k2s-dns-coredns-patch-apply")
    assert apply["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade,post-rollback"
    container = apply["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python3", "-m", "k2s_dns.hook", "apply"]
    assert "--desired=k2s-dns/k2s-dns-coredns-desired" in container["args"]


def test_remove_job_stops_the_controller_first(render):
    remove = find(render(), "Job", "k2s-dns-coredns-patch-remove")
    assert remove["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    args = remove["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--stop-controller=k2s-dns/k2s-dns-controller" in args
    assert any(a.startswith("--controller-selector=") and "component=controller" in a for a in args)


def test_desired_state_of_the_defaults(render):
    desired = desired_of(render())
    assert desired["endpoints"] == ["https://k2s-dns-etcd.k2s-dns.svc.cluster.local:2379"]
    assert desired["tls"] is True and desired["zone"] == "cluster.local" and desired["serverBlock"] == ""
    assert desired["hostAliases"] == ["k2s-dns-etcd.k2s-dns.svc.cluster.local=k2s-dns/k2s-dns-etcd"]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [({}, True), ({"cacheZone": False}, False), ({"cacheZone": None}, True)],
    ids=["default", "off", "missing-from-an-older-release"],
)
def test_cache_zone_switch_reaches_the_desired_state(patch, expected, render):
    assert desired_of(render({"coredns": {"patch": patch}}))["cacheZone"] is expected


def test_every_pod_is_kept_on_linux_nodes(rendered):
    _, objects = rendered
    for name, spec in pod_specs(objects):
        assert spec["nodeSelector"]["kubernetes.io/os"] == "linux", name


def test_bundled_etcd_uses_tls_and_client_certificates(render):
    args = find(render(), "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--client-cert-auth=true" in args and "--peer-client-cert-auth=true" in args
    assert "--listen-client-urls=https://0.0.0.0:2379" in args


def common_name(pem_b64: str) -> str:
    cert = x509.load_pem_x509_certificate(base64.b64decode(pem_b64))
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_etcd_users_are_the_client_certificate_names(render):
    objects = render()
    pod = find(objects, "StatefulSet")["spec"]["template"]["spec"]
    _, auth = pod["containers"]
    assert auth["name"] == "auth" and auth["command"] == ["python3", "-m", "k2s_dns.etcd_auth"]
    args = dict(a.lstrip("-").split("=", 1) for a in auth["args"])
    assert args["endpoint"] == "https://127.0.0.1:2379" and args["prefix"] == "/skydns"
    assert args["writer"] == common_name(find(objects, "Secret", "k2s-dns-external-dns-etcd-client")["data"]["tls.crt"])
    assert args["reader"] == common_name(find(objects, "Secret", "etcd-client-for-core-dns")["data"]["tls.crt"])
    assert {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == {
        "k2s-dns-etcd-server",
        "k2s-dns-etcd-peer",
        "k2s-dns-etcd-root",
    }
    # The peer certificate is the etcd container's alone, not the auth sidecar's.
    assert "peer" not in {m["name"] for m in auth["volumeMounts"]}
    assert len(base64.b64decode(find(objects, "Secret", "k2s-dns-etcd-root")["data"]["password"])) == 32


@pytest.mark.parametrize("case", ["no-etcd-auth", "http-only"])
def test_etcd_without_auth(case, render):
    objects = render(MATRIX[case])
    assert [c["name"] for c in find(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"]] == ["etcd"]
    assert not [o for o in objects if o["metadata"]["name"] == "k2s-dns-etcd-root"]


def test_http_only_when_asked(render):
    objects = render(MATRIX["http-only"])
    args = find(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--listen-client-urls=http://0.0.0.0:2379" in args
    assert not any(a.startswith("--client-cert-auth") for a in args)
    assert not [o for o in objects if o["kind"] == "Secret"]
    assert "ETCD_CERT_FILE" not in env_of(objects, "k2s-dns-external-dns")
    assert desired_of(objects)["tls"] is False


def test_three_members_form_one_cluster(render):
    sts = find(render(MATRIX["three-members"]), "StatefulSet")
    assert sts["spec"]["replicas"] == 3
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    initial = next(a for a in args if a.startswith("--initial-cluster="))
    members = initial.split("=", 1)[1].split(",")
    assert [m.split("=")[0] for m in members] == ["k2s-dns-etcd-0", "k2s-dns-etcd-1", "k2s-dns-etcd-2"]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast"
    # Uninstall takes the volumes along (a reinstall must not meet the old release's etcd users).
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Delete", "whenScaled": "Retain"}


def test_data_volumes_kept_on_request_and_no_policy_without_persistence(render):
    kept = {"etcd": {"bundled": {"persistence": {"enabled": True, "whenDeleted": "Retain"}}}}
    sts = find(render(kept), "StatefulSet")
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    assert "persistentVolumeClaimRetentionPolicy" not in find(render({}), "StatefulSet")["spec"]


def test_external_etcd_uses_the_given_urls_and_secrets(render):
    objects = render(MATRIX["external-etcd"])
    assert not [o for o in objects if o["kind"] == "StatefulSet"]
    env = env_of(objects, "k2s-dns-external-dns")
    assert env["ETCD_URLS"] == "https://10.0.0.5:2379,https://10.0.0.6:2379"
    volumes = find(objects, "Deployment", "k2s-dns-external-dns")["spec"]["template"]["spec"]["volumes"]
    assert {v["secret"]["secretName"] for v in volumes} == {"my-etcd-ca", "my-etcd-client"}
    desired = desired_of(objects)
    assert desired["endpoints"] == ["https://10.0.0.5:2379", "https://10.0.0.6:2379"]
    assert "hostAliases" not in desired


def decode(secret: dict, key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def test_certificates_share_one_ca_and_no_ca_key_is_stored(render):
    objects = render()
    secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in objects if s["kind"] == "Secret"}
    assert set(secrets) == {
        ("k2s-dns", "k2s-dns-etcd-ca"),
        ("k2s-dns", "k2s-dns-etcd-server"),
        ("k2s-dns", "k2s-dns-etcd-peer"),
        ("k2s-dns", "k2s-dns-external-dns-etcd-client"),
        ("kube-system", "etcd-client-for-core-dns"),
        ("kube-system", "etcd-ca"),
        ("k2s-dns", "k2s-dns-etcd-root"),
    }
    cas = {decode(s, "ca.crt") for s in secrets.values() if "ca.crt" in s["data"]}
    assert len(cas) == 1
    for secret in secrets.values():
        for key, value in secret["data"].items():
            assert key != "ca.key"
            assert "PRIVATE KEY" not in base64.b64decode(value).decode() or key == "tls.key"
        # Ownership: the labels and the annotation naming the release.
        assert secret["metadata"]["annotations"]["k2s-dns.io/owner"] == "k2s-dns/k2s-dns"
        assert secret["metadata"]["labels"]["app.kubernetes.io/part-of"] == "k2s-dns"
        assert secret["metadata"]["labels"]["app.kubernetes.io/instance"] == "k2s-dns"


def test_network_policy_admits_only_clients_and_peers(render):
    policy = find(render(), "NetworkPolicy")
    client_rule, peer_rule = policy["spec"]["ingress"]
    assert [p["port"] for p in client_rule["ports"]] == [2379]
    sources = client_rule["from"]
    assert sources[0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "external-dns"
    assert sources[1]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert sources[1]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert [p["port"] for p in peer_rule["ports"]] == [2380, 2381]


def test_helm_test_publishes_and_resolves_a_name(render):
    objects = render()
    ingress = find(objects, "Ingress", "k2s-dns-test")
    assert ingress["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert ingress["spec"]["rules"][0]["host"] == "k2s-dns-helm-test.cluster.local"
    pod = find(objects, "Pod", "k2s-dns-test")
    command = pod["spec"]["containers"][0]["command"]
    assert command[:3] == ["python3", "-m", "k2s_dns.dnscheck"]
    assert command[3:5] == ["k2s-dns-helm-test.cluster.local", "192.0.2.10"]


def test_no_patch_renders_no_controller_and_removes_a_previous_patch(render):
    objects = render(MATRIX["no-patch"])
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Job"] == ["k2s-dns-coredns-patch-remove"]
    remove = find(objects, "Job", "k2s-dns-coredns-patch-remove")
    assert remove["metadata"]["annotations"]["helm.sh/hook"] == "post-upgrade,post-rollback,pre-delete"
    assert not [o for o in objects if o["metadata"]["name"].startswith("k2s-dns-controller")]
    assert not [o for o in objects if o["kind"] == "NetworkPolicy"]


def test_rendering_is_deterministic_apart_from_certificates(render):
    def strip(objects):
        out = []
        for obj in objects:
            if obj["kind"] == "Secret":
                continue
            annotations = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {})
            annotations.pop("checksum/certificates", None)
            out.append(obj)
        return json.dumps(out, sort_keys=True)

    assert strip(render()) == strip(render())


def test_cluster_mode_issues_certificates_on_a_control_plane_node(render):
    objects = render(MATRIX["cluster-etcd"])
    assert not [o for o in objects if o["kind"] in ("StatefulSet", "Secret", "NetworkPolicy")]
    issue = find(objects, "Job", "k2s-dns-etcd-certs-issue")
    assert issue["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    spec = issue["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/os": "linux"}
    assert spec["tolerations"][0]["key"] == "node-role.kubernetes.io/control-plane"
    # Exactly the two CA files (not the peer and server keys next to them) and etcd.yaml, each read-only.
    assert [v["hostPath"] for v in spec["volumes"]] == [
        {"path": "/etc/kubernetes/pki/etcd/ca.crt", "type": "File"},
        {"path": "/etc/kubernetes/pki/etcd/ca.key", "type": "File"},
        {"path": "/etc/kubernetes/manifests/etcd.yaml", "type": "File"},
    ]
    mounts = spec["containers"][0]["volumeMounts"]
    assert [m["mountPath"] for m in mounts] == [
        "/etc/k2s-dns/kubeadm-etcd-ca/ca.crt",
        "/etc/k2s-dns/kubeadm-etcd-ca/ca.key",
        "/etc/k2s-dns/kubeadm-manifests/etcd.yaml",
    ]
    assert all(m["readOnly"] is True for m in mounts)
    sc = spec["containers"][0]["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["readOnlyRootFilesystem"] is True
    args = spec["containers"][0]["args"]
    assert "--client=kube-system/etcd-client-for-core-dns=k2s-dns-coredns" in args
    assert "--ca-secret=kube-system/etcd-ca" in args
    assert "--pki-dir=/etc/k2s-dns/kubeadm-etcd-ca" in args
    assert "--manifest=/etc/k2s-dns/kubeadm-manifests/etcd.yaml" in args
    assert "--release=k2s-dns/k2s-dns" in args and "--adopt" not in args
    cron = find(objects, "CronJob", "k2s-dns-etcd-certs-renew")
    assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"] == args
    env = find(objects, "Deployment", "k2s-dns-external-dns")["spec"]["template"]["spec"]["containers"][0]["env"]
    urls = next(e for e in env if e["name"] == "ETCD_URLS")
    assert urls["valueFrom"]["secretKeyRef"] == {"name": "k2s-dns-etcd-endpoints", "key": "ETCD_URLS"}
    assert desired_of(objects)["endpointsSecret"] == "k2s-dns/k2s-dns-etcd-endpoints"
    # The controller restarts CoreDNS on new certificates; the renewal restarts only ExternalDNS.
    assert "--rollout=kube-system/coredns" not in args and "--rollout=k2s-dns/k2s-dns-external-dns" in args


def test_cluster_mode_rbac_is_limited_to_named_secrets(render):
    objects = render(MATRIX["cluster-etcd"])
    roles = [o for o in objects if o["kind"] == "Role" and "etcd-certs" in o["metadata"]["name"]]
    assert len(roles) == 4
    for role in roles:
        for rule in role["rules"]:
            if rule["verbs"] != ["create"]:
                assert rule["resourceNames"], role["metadata"]["name"]
            assert "list" not in rule["verbs"] and "watch" not in rule["verbs"]
    cleanup = find(objects, "Job", "k2s-dns-etcd-certs-cleanup")
    assert cleanup["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    assert int(cleanup["metadata"]["annotations"]["helm.sh/hook-weight"]) > 0
    args = cleanup["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--owner=k2s-dns" in args and "--prefix=/skydns" in args


def test_cluster_mode_with_existing_secret_issues_nothing_and_still_cleans_up_its_records(render):
    objects = render(MATRIX["cluster-etcd-existing-secret"])
    assert not [o for o in objects if o["kind"] == "CronJob" or o["metadata"]["name"].endswith("-issue")]
    volumes = find(objects, "Deployment", "k2s-dns-external-dns")["spec"]["template"]["spec"]["volumes"]
    assert {v["secret"]["secretName"] for v in volumes} == {"mine"}
    cleanup = find(objects, "Job", "k2s-dns-etcd-certs-cleanup")
    assert cleanup["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    spec = cleanup["spec"]["template"]["spec"]
    args = spec["containers"][0]["args"]
    assert "--owner=k2s-dns" in args and "--endpoint=https://10.0.0.2:2379" in args
    assert not [a for a in args if a.startswith(("--delete-secret", "--endpoints-file"))], "the Secrets are the user's"
    assert {v["secret"]["secretName"] for v in spec["volumes"]} == {"mine"}
    # Its permissions: scaling ExternalDNS to zero, no Secret at all; only while the hook runs.
    roles = [o for o in objects if o["kind"] == "Role" and "etcd-certs" in o["metadata"]["name"]]
    assert [r["metadata"]["namespace"] for r in roles] == ["k2s-dns"]
    assert roles[0]["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": ["k2s-dns-external-dns"],
            "verbs": ["get", "update"],
        }
    ]
    for obj in objects:
        if "etcd-certs" in obj["metadata"]["name"] and obj["kind"] != "Job":
            assert obj["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete", obj["kind"]


def test_cluster_mode_cleanup_deletes_only_after_the_records_and_only_its_secrets(render):
    objects = render(MATRIX["cluster-etcd"])
    args = find(objects, "Job", "k2s-dns-etcd-certs-cleanup")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--release=k2s-dns/k2s-dns" in args
    assert [a for a in args if a.startswith("--delete-secret")] == [
        "--delete-secret=k2s-dns/k2s-dns-external-dns-etcd-client",
        "--delete-secret=k2s-dns/k2s-dns-etcd-ca",
        "--delete-secret=k2s-dns/k2s-dns-etcd-endpoints",
        "--delete-secret=kube-system/etcd-client-for-core-dns",
        "--delete-secret=kube-system/etcd-ca",
    ]


def test_cluster_mode_adopts_only_when_asked(render):
    objects = render({"etcd": {"mode": "cluster", "adoptExistingSecrets": True}})
    assert "--adopt" in args_of(objects, "Job", "k2s-dns-etcd-certs-issue")


def san_names(pem_b64: str) -> list[str]:
    cert = x509.load_pem_x509_certificate(base64.b64decode(pem_b64))
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def test_etcd_peers_accept_only_the_peer_certificate(render):
    """etcd v3.6 (client/pkg/transport/listener.go): --peer-cert-allowed-cn makes both ends of every peer
    connection check the other's CN, so members need a certificate of that CN and client certificates from
    the same CA (CN k2s-dns-external-dns, k2s-dns-coredns) are refused on port 2380."""
    objects = render()
    args = find(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--peer-cert-allowed-cn=k2s-dns-etcd-peer" in args
    assert "--peer-cert-file=/etc/etcd/peer/tls.crt" in args and "--peer-trusted-ca-file=/etc/etcd/peer/ca.crt" in args
    peer = find(objects, "Secret", "k2s-dns-etcd-peer")["data"]
    assert common_name(peer["tls.crt"]) == "k2s-dns-etcd-peer"
    assert san_names(peer["tls.crt"]) == [
        "*.k2s-dns-etcd-headless",
        "*.k2s-dns-etcd-headless.k2s-dns.svc",
        "*.k2s-dns-etcd-headless.k2s-dns.svc.cluster.local",
    ]
    cert = x509.load_pem_x509_certificate(base64.b64decode(peer["tls.crt"]))
    usage = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usage == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert peer["ca.crt"] == find(objects, "Secret", "k2s-dns-etcd-ca")["data"]["ca.crt"]
    clients = [
        common_name(find(objects, "Secret", name)["data"]["tls.crt"])
        for name in ("k2s-dns-external-dns-etcd-client", "etcd-client-for-core-dns", "k2s-dns-etcd-server")
    ]
    assert "k2s-dns-etcd-peer" not in clients


@pytest.mark.parametrize(("scheme", "tls"), [("https", True), ("http", False)])
def test_external_mode_has_one_tls_rule_for_external_dns_and_coredns(render, scheme, tls):
    secrets = {"caSecret": "my-etcd-ca", "clientSecret": "my-etcd-client"} if tls else {}
    values = {"etcd": {"mode": "external", "external": {"endpoints": [f"{scheme}://10.0.0.5:2379"], **secrets}}}
    objects = render(values)
    env = env_of(objects, "k2s-dns-external-dns")
    spec = find(objects, "Deployment", "k2s-dns-external-dns")["spec"]["template"]["spec"]
    assert ("ETCD_CERT_FILE" in env) is tls and ("ETCD_CA_FILE" in env) is tls
    assert bool(spec.get("volumes")) is tls
    assert desired_of(objects)["tls"] is tls


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"etcd": {"mode": "external", "external": {"endpoints": ["https://10.0.0.5:2379"]}}},
            "etcd.external.endpoints are https://, so ExternalDNS and CoreDNS use TLS: set etcd.external.caSecret",
        ),
        (
            {
                "etcd": {
                    "mode": "external",
                    "external": {"endpoints": ["https://10.0.0.5:2379"], "clientSecret": "client"},
                }
            },
            "set etcd.external.caSecret (ca.crt) and etcd.external.clientSecret (tls.crt, tls.key)",
        ),
        (
            {"etcd": {"mode": "external", "external": {"endpoints": ["http://10.0.0.5:2379"], "caSecret": "ca"}}},
            "etcd.external.endpoints are http://, so nothing uses TLS and etcd.external.caSecret and "
            "etcd.external.clientSecret would be ignored",
        ),
        (
            {
                "etcd": {
                    "mode": "external",
                    "external": {
                        "endpoints": ["https://10.0.0.5:2379", "http://10.0.0.6:2379"],
                        "caSecret": "ca",
                        "clientSecret": "client",
                    },
                }
            },
            "etcd.external.endpoints mix https:// and http:// (https://10.0.0.5:2379, http://10.0.0.6:2379)",
        ),
        (
            {"etcd": {"bundled": {"existingSecrets": {"server": "s", "peer": "p"}}}},
            "etcd.bundled.existingSecrets: name all three certificate Secrets (server, peer, externalDNS), or none",
        ),
    ],
    ids=["https-without-secrets", "https-without-ca", "http-with-secrets", "mixed-schemes", "partial-gitops"],
)
def test_the_chart_explains_what_the_schema_rejects(values, message, render):
    """The schema rejects these (test_schema.py); with --skip-schema-validation the chart says why."""
    from .conftest import RenderError

    with pytest.raises(RenderError) as err:
        render(values, "--skip-schema-validation")
    assert message in str(err.value)


GITOPS = {
    "etcd": {
        "bundled": {
            "existingSecrets": {
                "server": "k2s-dns-gitops-etcd-server",
                "peer": "k2s-dns-gitops-etcd-peer",
                "externalDNS": "k2s-dns-gitops-external-dns",
                "rootPassword": "k2s-dns-gitops-etcd-root",
            }
        }
    },
    "coredns": {"clientSecret": "k2s-dns-gitops-coredns", "caSecret": "k2s-dns-gitops-ca"},
}


def test_gitops_render_generates_nothing_and_is_identical_every_time(helm_bin, tmp_path):
    """helm template (as Argo CD renders) with named Secrets: no key, certificate or password is generated."""
    from .conftest import helm_template

    first = helm_template(helm_bin, GITOPS, tmp_path)
    assert first == helm_template(helm_bin, GITOPS, tmp_path), "two renders differ"
    for marker in ("PRIVATE KEY", "CERTIFICATE", "password:"):
        assert marker not in first
    objects = [doc for doc in yaml.safe_load_all(first) if doc]
    assert not [o for o in objects if o["kind"] == "Secret"]
    pod = find(objects, "StatefulSet")["spec"]["template"]["spec"]
    assert {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == {
        "tls": "k2s-dns-gitops-etcd-server",
        "peer": "k2s-dns-gitops-etcd-peer",
        "root": "k2s-dns-gitops-etcd-root",
    }
    assert "--peer-cert-allowed-cn=k2s-dns-etcd-peer" in pod["containers"][0]["args"]
    edns = find(objects, "Deployment", "k2s-dns-external-dns")["spec"]["template"]["spec"]
    assert {v["secret"]["secretName"] for v in edns["volumes"]} == {"k2s-dns-gitops-external-dns"}
    desired = desired_of(objects)
    assert desired["clientSecret"] == "k2s-dns-gitops-coredns" and desired["caSecret"] == "k2s-dns-gitops-ca"
    for name, spec in pod_specs(objects):
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"].startswith("k2s-dns-gitops-"), name


def test_default_render_generates_certificates_on_every_helm_template(helm_bin, tmp_path):
    """Why GitOps needs the named Secrets: without a cluster to look up, each render has a new CA."""
    from .conftest import helm_template

    assert helm_template(helm_bin, {}, tmp_path) != helm_template(helm_bin, {}, tmp_path)
