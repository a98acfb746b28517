"""README's GitOps example works: its script makes the certificates the chart would make (names, CNs, SANs,
usages, one CA, no CA key kept), its Secrets are the ones its values name, and the chart rendered with those
values generates nothing and renders the same every time."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from k2s_dns import certs
from tests.conftest import REPO

from .conftest import find, helm_template

SECTION = re.compile(
    r"<!-- gitops:begin -->\n```bash\n(?P<script>.*?)```\n\n```yaml\n(?P<values>.*?)```\n<!-- gitops:end -->", re.S
)


@pytest.fixture(scope="module")
def example() -> tuple[str, dict]:
    match = SECTION.search((REPO / "README.md").read_text())
    assert match, "README has no GitOps example between <!-- gitops:begin --> and <!-- gitops:end -->"
    return match["script"], yaml.safe_load(match["values"])


@pytest.fixture(scope="module")
def created(example, tmp_path_factory) -> tuple[dict[tuple[str, str], dict], Path]:
    """Run the script with `kubectl create` in client dry-run mode; the Secrets it would create."""
    if not shutil.which("openssl"):
        pytest.fail("openssl not installed: apt-get install openssl")
    kubectl = REPO / "bin" / "kubectl"
    if not kubectl.exists():
        pytest.fail("kubectl not in ./bin: run `make tools` (make test builds it)")
    work = tmp_path_factory.mktemp("gitops")
    out = work / "secrets.yaml"
    stub = f'kubectl() {{ {kubectl} "$@" --dry-run=client -o yaml >> {out}; echo --- >> {out}; }}\n'
    env = {**os.environ, "KUBECONFIG": os.devnull}
    result = subprocess.run(
        ["bash", "-c", stub + example[0]], cwd=work, capture_output=True, text=True, check=False, env=env
    )
    assert result.returncode == 0, result.stderr
    objects = [o for o in yaml.safe_load_all((work / "secrets.yaml").read_text()) if o]
    return {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}, work


def data(secret: dict) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def cn(c: x509.Certificate) -> str:
    return c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def sans(c: x509.Certificate) -> set[str]:
    try:
        ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(ext.get_values_for_type(x509.DNSName)) | {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)}


def usages(c: x509.Certificate) -> set:
    return set(c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_the_script_creates_exactly_the_secrets_the_values_name(example, created):
    _, values = example
    secrets, _ = created
    named = values["etcd"]["bundled"]["existingSecrets"]
    expected = {("k2s-dns", name) for name in named.values()}
    expected |= {("kube-system", values["coredns"]["clientSecret"]), ("kube-system", values["coredns"]["caSecret"])}
    assert set(secrets) == expected


def test_the_certificates_are_what_etcd_and_its_clients_need(example, created, helm_bin, tmp_path):
    _, values = example
    secrets, work = created
    named = values["etcd"]["bundled"]["existingSecrets"]
    server = data(secrets[("k2s-dns", named["server"])])
    peer = data(secrets[("k2s-dns", named["peer"])])
    edns = data(secrets[("k2s-dns", named["externalDNS"])])
    coredns = data(secrets[("kube-system", values["coredns"]["clientSecret"])])
    ca_pem = data(secrets[("kube-system", values["coredns"]["caSecret"])])["ca.crt"]
    ca = cert(ca_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for bundle in (server, peer, edns):
        assert bundle["ca.crt"] == ca_pem and set(bundle) == {"tls.crt", "tls.key", "ca.crt"}
    assert set(coredns) == {"tls.crt", "tls.key"}
    for bundle in (server, peer, edns, coredns):
        assert certs.signed_by(cert(bundle["tls.crt"]), ca)
    # The CNs are etcd's users and the one CN its peer port accepts.
    assert cn(cert(peer["tls.crt"])) == "k2s-dns-etcd-peer"
    assert cn(cert(edns["tls.crt"])) == "k2s-dns-external-dns"
    assert cn(cert(coredns["tls.crt"])) == "k2s-dns-coredns"
    server_auth, client_auth = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
    assert usages(cert(peer["tls.crt"])) == {server_auth, client_auth}
    assert usages(cert(server["tls.crt"])) == {server_auth, client_auth}  # the auth sidecar is a client
    assert usages(cert(edns["tls.crt"])) == {client_auth} == usages(cert(coredns["tls.crt"]))
    # The same names the chart's generated certificates carry.
    generated = yaml.safe_load_all(helm_template(helm_bin, {}, tmp_path))
    generated = [o for o in generated if o]
    assert sans(cert(server["tls.crt"])) == sans(
        cert(base64.b64decode(find(generated, "Secret", "k2s-dns-etcd-server")["data"]["tls.crt"]))
    )
    assert sans(cert(peer["tls.crt"])) == sans(
        cert(base64.b64decode(find(generated, "Secret", "k2s-dns-etcd-peer")["data"]["tls.crt"]))
    )
    # No CA key anywhere, no key file left behind.
    ca_public = ca.public_key().public_numbers()
    for secret in secrets.values():
        for value in data(secret).values():
            if b"PRIVATE KEY" in value:
                key = serialization.load_pem_private_key(value, password=None)
                assert key.public_key().public_numbers() != ca_public
    assert not list(work.glob("*.key")) and not (work / "ca.srl").exists()
    password = data(secrets[("k2s-dns", named["rootPassword"])])
    assert set(password) == {"password"} and len(password["password"]) == 48


def test_the_values_render_without_generating_anything(example, helm_bin, tmp_path):
    _, values = example
    first = helm_template(helm_bin, values, tmp_path)
    assert first == helm_template(helm_bin, values, tmp_path)
    objects = [o for o in yaml.safe_load_all(first) if o]
    assert not [o for o in objects if o["kind"] == "Secret"]
    assert "PRIVATE KEY" not in first and "password:" not in first
