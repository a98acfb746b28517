"""What the chart does with what already exists in the cluster (Helm's `lookup`), against a fake API server:
Secrets that are not this release's stop the install (message asserted, before Helm's own refusal), a
changed etcd member count is refused, certificates and the root password are kept, and NOTES.txt for
`coredns.patch.enabled=false` prints a block and commands that work."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from k2s_dns import corefile
from tests.conftest import CHART
from tests.notes import etcd_block as printed_block
from tests.notes import shell_commands, steps

from .conftest import KUBE_VERSION, find
from .fake_kube_server import serve

RELEASE, NAMESPACE = "k2s-dns", "k2s-dns"
OURS = {"k2s-dns.io/owner": f"{NAMESPACE}/{RELEASE}"}
GITOPS = {
    "server": "my-etcd-server",
    "peer": "my-etcd-peer",
    "externalDNS": "my-external-dns",
    "rootPassword": "my-root",
}


def secret(namespace: str, name: str, data: dict[str, str] | None = None, **metadata) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, **metadata},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in (data or {"ca.crt": "x"}).items()},
    }


def statefulset(replicas: int) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "k2s-dns-etcd", "namespace": NAMESPACE},
        "spec": {"replicas": replicas},
    }


class Helm:
    def __init__(self, helm: str, tmp: Path):
        self.helm, self.tmp = helm, tmp

    def run(self, objects: list[dict], values: dict, *args: str) -> subprocess.CompletedProcess:
        values_file = self.tmp / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        with serve(objects, self.tmp) as kubeconfig:
            env = {
                **os.environ,
                "KUBECONFIG": str(kubeconfig),
                "HOME": str(self.tmp),
                "XDG_CACHE_HOME": str(self.tmp / "cache"),
                "XDG_CONFIG_HOME": str(self.tmp / "config"),
                "XDG_DATA_HOME": str(self.tmp / "data"),
            }
            cmd = [self.helm, *args, RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(values_file)]
            return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)

    def template(self, objects: list[dict], values: dict | None = None) -> list[dict]:
        """`helm template --dry-run=server`: lookup answered by the fake API server."""
        result = self.run(objects, values or {}, "template", "--dry-run=server", "--kube-version", KUBE_VERSION)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def template_error(self, objects: list[dict], values: dict | None = None) -> str:
        result = self.run(objects, values or {}, "template", "--dry-run=server", "--kube-version", KUBE_VERSION)
        assert result.returncode != 0, "rendered although it must be refused"
        return result.stderr

    def install_error(self, objects: list[dict], values: dict | None = None) -> str:
        """`helm install --dry-run=server`: what a user sees, with Helm's own checks after rendering."""
        result = self.run(objects, values or {}, "install", "--dry-run=server", "--disable-openapi-validation")
        assert result.returncode != 0, "installed although it must be refused"
        return result.stderr

    def notes(self, values: dict) -> str:
        # Server-side: the fake API server says which Kubernetes it is (the chart's kubeVersion needs >= 1.30).
        result = self.run([], values, "install", "--dry-run=server", "--disable-openapi-validation")
        assert result.returncode == 0, result.stderr
        return result.stdout.split("NOTES:\n", 1)[1]


@pytest.fixture
def helm(helm_bin: str, tmp_path: Path) -> Helm:
    return Helm(helm_bin, tmp_path)


# --- Secrets that are not this release's -------------------------------------------------------------------


def test_bundled_install_stops_at_a_foreign_secret_naming_it(helm):
    k2s_scripts = secret("kube-system", "etcd-ca")  # K2s's own scripts create a Secret of this name
    message = helm.template_error([k2s_scripts])
    assert (
        "Secret kube-system/etcd-ca (it belongs to no k2s-dns release: somebody else made it) exists and was "
        "not made by release k2s-dns/k2s-dns: k2s-dns never overwrites or deletes a Secret that is not its own."
    ) in message
    assert "etcd.bundled.existingSecrets" in message and "coredns.caSecret" in message
    assert "etcd.adoptExistingSecrets=true" in message and "--take-ownership" in message


def test_our_message_comes_before_helms_own_refusal(helm):
    message = helm.install_error([secret("kube-system", "etcd-ca")])
    assert "not made by release k2s-dns/k2s-dns" in message
    # What Helm 3 itself says about an existing object it does not own, which would otherwise be all:
    assert "invalid ownership metadata" not in message


def test_helms_own_refusal_is_what_adoption_runs_into(helm):
    """With etcd.adoptExistingSecrets our check lets it pass, and Helm's own applies (hence --take-ownership)."""
    message = helm.install_error([secret("kube-system", "etcd-ca")], {"etcd": {"adoptExistingSecrets": True}})
    assert 'Secret "etcd-ca" in namespace "kube-system" exists and cannot be imported' in message
    assert "invalid ownership metadata" in message


def test_every_foreign_secret_is_named(helm):
    objects = [
        secret("kube-system", "etcd-client-for-core-dns", annotations={"k2s-dns.io/owner": "other/k2s-dns"}),
        secret(NAMESPACE, "k2s-dns-etcd-root", annotations={"meta.helm.sh/release-name": "x"}),
    ]
    message = helm.template_error(objects)
    assert "Secret kube-system/etcd-client-for-core-dns (it belongs to k2s-dns release other/k2s-dns)" in message
    assert "Secret k2s-dns/k2s-dns-etcd-root (it belongs to Helm release ?/x)" in message


def cert_data(objects: list[dict], name: str) -> dict[str, str]:
    return find(objects, "Secret", name)["data"]


def test_secrets_of_this_release_are_kept(helm):
    first = helm.template([])
    existing = [{**s, "metadata": {**s["metadata"], "annotations": OURS}} for s in first if s["kind"] == "Secret"]
    again = helm.template(existing)
    for s in existing:
        assert find(again, "Secret", s["metadata"]["name"])["data"] == s["data"], s["metadata"]["name"]


def test_secrets_of_an_earlier_chart_version_are_kept_and_peer_with_the_serving_certificate(helm):
    """Helm-made, without our annotation and without a peer Secret: no CA key to sign one, and a new CA
    would cut a restarted member of a multi-member cluster off from the others, so nothing is regenerated."""
    helm_owned = {"meta.helm.sh/release-name": RELEASE, "meta.helm.sh/release-namespace": NAMESPACE}
    first = helm.template([])
    existing = [
        {**s, "metadata": {**s["metadata"], "annotations": helm_owned}}
        for s in first
        if s["kind"] == "Secret" and s["metadata"]["name"] != "k2s-dns-etcd-peer"
    ]
    objects = helm.template(existing)
    assert not [o for o in objects if o["metadata"]["name"] == "k2s-dns-etcd-peer"]
    for s in existing:
        assert find(objects, "Secret", s["metadata"]["name"])["data"] == s["data"]
    pod = find(objects, "StatefulSet")["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert "--peer-cert-file=/etc/etcd/tls/tls.crt" in args
    # The serving certificate's CN is the StatefulSet's name: no client certificate has it.
    assert "--peer-cert-allowed-cn=k2s-dns-etcd" in args
    assert common_name(find(objects, "Secret", "k2s-dns-etcd-server")["data"]["tls.crt"]) == "k2s-dns-etcd"
    assert "peer" not in {v["name"] for v in pod["volumes"]}


def test_a_missing_secret_regenerates_the_set_with_a_peer_certificate(helm):
    first = helm.template([])
    existing = [
        {**s, "metadata": {**s["metadata"], "annotations": OURS}}
        for s in first
        if s["kind"] == "Secret" and s["metadata"]["name"] not in ("k2s-dns-etcd-peer", "etcd-ca")
    ]
    objects = helm.template(existing)
    assert find(objects, "Secret", "k2s-dns-etcd-server")["data"] != cert_data(first, "k2s-dns-etcd-server")
    assert (
        "--peer-cert-allowed-cn=k2s-dns-etcd-peer"
        in find(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["args"]
    )


def test_root_password_is_kept(helm):
    root = secret(NAMESPACE, "k2s-dns-etcd-root", {"password": "kept-password"}, annotations=OURS)
    objects = helm.template([root])
    assert find(objects, "Secret", "k2s-dns-etcd-root")["data"] == root["data"]


def test_cluster_mode_install_stops_at_a_foreign_secret(helm):
    message = helm.template_error([secret("kube-system", "etcd-client-for-core-dns")], {"etcd": {"mode": "cluster"}})
    assert "Secret kube-system/etcd-client-for-core-dns (it belongs to no k2s-dns release" in message
    assert "etcd.cluster.existingSecret" in message and "etcd.adoptExistingSecrets=true" in message
    assert "--take-ownership" not in message  # the Job writes these, not Helm


def test_cluster_mode_accepts_its_own_and_adopts_on_request(helm):
    labelled = {"app.kubernetes.io/part-of": "k2s-dns", "app.kubernetes.io/instance": RELEASE}
    helm.template([secret("kube-system", "etcd-ca", labels=labelled)], {"etcd": {"mode": "cluster"}})
    objects = helm.template(
        [secret("kube-system", "etcd-ca")], {"etcd": {"mode": "cluster", "adoptExistingSecrets": True}}
    )
    assert (
        "--adopt"
        in find(objects, "Job", "k2s-dns-etcd-certs-issue")["spec"]["template"]["spec"]["containers"][0]["args"]
    )


def test_gitops_values_look_nothing_up(helm):
    """With named Secrets nothing depends on what exists: a foreign Secret of a generated name is no matter."""
    values = {"etcd": {"bundled": {"existingSecrets": GITOPS}}}
    helm.template([secret("kube-system", "etcd-ca")], values)


# --- Changing the number of etcd members -------------------------------------------------------------------


def test_changing_the_member_count_is_refused_before_anything_changes(helm):
    values = {"etcd": {"bundled": {"replicas": 3, "persistence": {"enabled": True}}}}
    message = helm.template_error([statefulset(1)], values)
    assert "etcd.bundled.replicas cannot change from 1 to 3 on upgrade" in message
    assert "would form a second etcd cluster next to the running one" in message
    assert "Nothing was changed. Keep etcd.bundled.replicas=1" in message
    assert "helm uninstall k2s-dns -n k2s-dns" in message
    assert "kubectl -n k2s-dns delete pvc -l app.kubernetes.io/instance=k2s-dns,app.kubernetes.io/component=etcd" in (
        message
    )
    message = helm.template_error([statefulset(3)], {"etcd": {"bundled": {"persistence": {"enabled": True}}}})
    assert "cannot change from 3 to 1" in message


def test_the_same_member_count_renders(helm):
    values = {"etcd": {"bundled": {"replicas": 3, "persistence": {"enabled": True}}}}
    assert find(helm.template([statefulset(3)], values), "StatefulSet")["spec"]["replicas"] == 3


def common_name(pem_b64: str) -> str:
    cert = x509.load_pem_x509_certificate(base64.b64decode(pem_b64))
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


# --- NOTES.txt with coredns.patch.enabled=false ------------------------------------------------------------

NO_PATCH = {"coredns": {"patch": {"enabled": False}}}


def etcd_block(notes: str) -> list[str]:
    return [line.strip() for line in printed_block(notes)]


def run_commands(notes: str, deployment: dict, tmp: Path, kubectl: str) -> dict:
    """Run NOTES' commands with bash: `kubectl get` of the etcd Service answers an address, `kubectl patch`
    is applied with `kubectl patch --local` to `deployment`. Returns the patched Deployment."""
    (tmp / "deploy.json").write_text(json.dumps(deployment))
    script = f"""
set -euo pipefail
kubectl() {{
  case "$*" in
    *"get service"*) echo 10.96.0.50 ;;
    *"patch deployment"*) shift 4; {kubectl} patch --local -f {tmp}/deploy.json -o json "${{@:2}}" > {tmp}/out.json ;;
    *"rollout restart"*) : ;;
    *) echo "unexpected: kubectl $*" >&2; exit 1 ;;
  esac
}}
{shell_commands(notes)}
"""
    env = {**os.environ, "KUBECONFIG": os.devnull}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 0, f"{result.stderr}\n{script}"
    return json.loads((tmp / "out.json").read_text())


def test_notes_without_patch_print_a_block_that_works_with_tls(helm, tmp_path, coredns_deployment, helm_bin):
    notes = helm.notes(NO_PATCH)
    assert etcd_block(notes) == [
        "etcd cluster.local {",
        "path /skydns",
        "endpoint https://k2s-dns-etcd.k2s-dns.svc.cluster.local:2379",
        "tls /etc/k2s-dns/etcd-client/tls.crt /etc/k2s-dns/etcd-client/tls.key /etc/k2s-dns/etcd-ca/ca.crt",
        "}",
    ]
    assert "fallthrough" not in notes
    # The view the patcher writes: the kubernetes plugin's names stay with the cluster's own block.
    assert f"expr not (name() matches '{corefile._owned_names_regex(['cluster.local.'])}')" in notes
    # In order (the e2e suite follows them step by step): mounts and host alias, Corefile, restart.
    parts = steps(notes)
    assert sorted(parts) == [1, 2, 3]
    assert "patch deployment coredns" in shell_commands(parts[1]) and "ETCD_IP=" in shell_commands(parts[1])
    assert "etcd cluster.local {" in parts[2] and not shell_commands(parts[2])
    assert shell_commands(parts[3]) == "kubectl -n kube-system rollout restart deployment coredns"
    kubectl = str(Path(helm_bin).parent / "kubectl")
    if not Path(kubectl).exists():
        pytest.fail("kubectl not in ./bin: run `make tools` (make test builds it)")
    coredns_deployment.update(apiVersion="apps/v1", kind="Deployment")
    patched = run_commands(notes, coredns_deployment, tmp_path, kubectl)["spec"]["template"]["spec"]
    # What the tls line names is mounted, and CoreDNS can resolve the bundled etcd's Service name.
    assert patched["hostAliases"] == [{"ip": "10.96.0.50", "hostnames": ["k2s-dns-etcd.k2s-dns.svc.cluster.local"]}]
    secrets = {v["name"]: v["secret"]["secretName"] for v in patched["volumes"] if "secret" in v}
    assert secrets == {"k2s-dns-etcd-client": "etcd-client-for-core-dns", "k2s-dns-etcd-ca": "etcd-ca"}
    mounts = {m["mountPath"]: m["name"] for m in patched["containers"][0]["volumeMounts"]}
    assert mounts["/etc/k2s-dns/etcd-client"] == "k2s-dns-etcd-client"
    assert mounts["/etc/k2s-dns/etcd-ca"] == "k2s-dns-etcd-ca"
    assert mounts["/etc/coredns"] == "config-volume", "kubeadm's own mount is kept"


def test_notes_without_patch_and_without_tls(helm):
    notes = helm.notes({**NO_PATCH, "etcd": {"tls": False}})
    assert etcd_block(notes) == [
        "etcd cluster.local {",
        "path /skydns",
        "endpoint http://k2s-dns-etcd.k2s-dns.svc.cluster.local:2379",
        "}",
    ]
    commands = shell_commands(notes)
    assert "hostAliases" in commands and "volumes" not in commands


def test_notes_without_patch_for_external_https_and_http(helm):
    external = {
        "mode": "external",
        "external": {"endpoints": ["https://10.0.0.5:2379"], "caSecret": "ca", "clientSecret": "client"},
    }
    notes = helm.notes({**NO_PATCH, "etcd": external, "zone": "apps.example"})
    assert etcd_block(notes)[2:4] == [
        "endpoint https://10.0.0.5:2379",
        "tls /etc/k2s-dns/etcd-client/tls.crt /etc/k2s-dns/etcd-client/tls.key /etc/k2s-dns/etcd-ca/ca.crt",
    ]
    assert "hostAliases" not in notes and "volumes: [" in notes
    assert "fallthrough" not in notes
    assert "            expr true" in notes, "a zone outside the cluster domain shares no names with kubernetes"
    plain = {"mode": "external", "external": {"endpoints": ["http://10.0.0.5:2379"]}}
    notes = helm.notes({**NO_PATCH, "etcd": plain})
    assert etcd_block(notes)[2:] == ["endpoint http://10.0.0.5:2379", "}"]
    assert "kubectl -n kube-system patch" not in notes


def test_notes_without_patch_in_cluster_mode_say_where_the_endpoints_are(helm):
    notes = helm.notes({**NO_PATCH, "etcd": {"mode": "cluster"}})
    assert "kubectl -n k2s-dns get secret k2s-dns-etcd-endpoints -o jsonpath='{.data.ETCD_URLS}' | base64 -d" in notes
    assert etcd_block(notes)[3].startswith("tls ")


def test_notes_with_patch_print_no_block(helm):
    assert "etcd cluster.local {" not in helm.notes({})


# --- objects admitted before the publication policy ----------------------------------------------------------


def ingress(namespace: str, name: str, hosts: list[str], annotations: dict | None = None) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"namespace": namespace, "name": name, "annotations": annotations or {}},
        "spec": {"rules": [{"host": h} for h in hosts]},
    }


def namespace_object(name: str, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


HIJACKS = [
    ingress("tenant", "evil", ["github.com.cluster.local", "web.tenant.cluster.local"]),
    ingress("tenant", "proxy", [], {"external-dns.alpha.kubernetes.io/hostname": "wpad.cluster.local."}),
    # Never answered from etcd (CoreDNS's view), so no reason to stop.
    ingress("tenant", "svc", ["db.prod.victim.svc.cluster.local"]),
    ingress("tenant", "fine", ["app.tenant.cluster.local", "app.example.test"]),
    ingress("addons", "k2s", ["k2s.cluster.local"]),
    ingress("labelled", "any", ["anything.cluster.local"]),
    namespace_object("tenant"),
    namespace_object("addons"),
    namespace_object("labelled", {"k2s-dns.io/trusted-publisher": "true"}),
]


def test_install_stops_at_objects_that_break_the_policy_naming_each(helm):
    message = helm.template_error(HIJACKS, {"publicationPolicy": {"trustedNamespaces": ["addons"]}})
    assert (
        "were admitted before the policy, so CoreDNS would answer them for other pods' search lists: "
        "Ingress tenant/evil: github.com.cluster.local; Ingress tenant/proxy: wpad.cluster.local. "
    ) in message
    assert "publicationPolicy.allowExistingViolations=true" in message


def test_the_same_rule_as_the_policy_module(helm):
    """The template's rule and k2s_dns.policy agree on every host above."""
    from k2s_dns.policy import refusal

    trusted = {"addons", "labelled", NAMESPACE}
    expected = set()
    for obj in HIJACKS:
        if obj["kind"] != "Ingress":
            continue
        ns = obj["metadata"]["namespace"]
        hosts = [r["host"] for r in obj["spec"]["rules"]] + [
            h for v in obj["metadata"]["annotations"].values() for h in v.split(",")
        ]
        for host in hosts:
            why = refusal(host, ns, "cluster.local", ns in trusted)
            if why and "never published" not in why:
                expected.add(f"Ingress {ns}/{obj['metadata']['name']}: {host.rstrip('.')}")
    message = helm.template_error(HIJACKS, {"publicationPolicy": {"trustedNamespaces": ["addons"]}})
    named = set(message.split("search lists: ", 1)[1].split(". Change", 1)[0].split("; "))
    assert named == expected


def test_install_goes_on_when_told_or_without_violations(helm):
    helm.template(HIJACKS, {"publicationPolicy": {"trustedNamespaces": ["addons"], "allowExistingViolations": True}})
    helm.template(
        [o for o in HIJACKS if o["metadata"]["name"] not in ("evil", "proxy")],
        {"publicationPolicy": {"trustedNamespaces": ["addons"]}},
    )
    # A zone outside the cluster domain shadows nothing: nothing to check.
    helm.template(HIJACKS, {"zone": "apps.example"})
