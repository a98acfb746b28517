"""Client certificates for the kubeadm etcd: issue, renew, reject expired or foreign CAs."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from k2s_dns import certs, kube, ownership

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def make_ca(
    name: str = "etcd-ca", days: int = 3650, start: dt.datetime = NOW, rsa_key: bool = True, is_ca: bool = True
) -> tuple[bytes, bytes]:
    """A CA like kubeadm's (RSA 2048, self-signed) as PEM certificate and key."""
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start - dt.timedelta(days=1))
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture(scope="module")
def ca_pem() -> tuple[bytes, bytes]:
    return make_ca()


@pytest.fixture
def ca(ca_pem) -> certs.CA:
    return certs.CA.load(*ca_pem, NOW)


def test_issued_certificate_is_a_client_certificate_signed_by_the_ca(ca):
    cert_pem, key_pem = certs.issue(ca, "k2s-dns-coredns", 90, NOW)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "k2s-dns-coredns"
    assert not cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)  # never system:masters
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert certs.signed_by(cert, ca.cert)
    assert certs.not_after(cert) - NOW == dt.timedelta(days=90)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()


def test_validity_is_capped_by_the_ca(ca_pem):
    short_ca = certs.CA.load(*make_ca(days=10), NOW)
    cert = x509.load_pem_x509_certificate(certs.issue(short_ca, "x", 90, NOW)[0])
    assert certs.not_after(cert) == certs.not_after(short_ca.cert)


def test_an_expired_ca_is_rejected():
    with pytest.raises(certs.CertError, match="not valid now"):
        certs.CA.load(*make_ca(days=30, start=NOW - dt.timedelta(days=60)), NOW)


def test_a_key_of_another_ca_is_rejected(ca_pem):
    other_key = make_ca("other")[1]
    with pytest.raises(certs.CertError, match="does not belong"):
        certs.CA.load(ca_pem[0], other_key, NOW)


def test_a_leaf_certificate_is_not_a_ca():
    with pytest.raises(certs.CertError, match="not a CA"):
        certs.CA.load(*make_ca(is_ca=False), NOW)


def test_ecdsa_ca_works_too():
    ca = certs.CA.load(*make_ca(rsa_key=False), NOW)
    assert certs.signed_by(x509.load_pem_x509_certificate(certs.issue(ca, "x", 1, NOW)[0]), ca.cert)


MONTH = dt.timedelta(days=30)


@pytest.mark.parametrize(
    ("age_days", "reason"),
    [(0, None), (59, None), (61, "less than 30 days from now"), (91, "expired")],
)
def test_renewal_when_less_than_renew_before_is_left(ca, age_days, reason):
    cert_pem, _ = certs.issue(ca, "k2s-dns-coredns", 90, NOW)
    later = NOW + dt.timedelta(days=age_days)
    result = certs.renewal_reason(cert_pem, ca, "k2s-dns-coredns", later, MONTH)
    assert result == reason if reason is None else reason in result


def test_a_certificate_from_a_foreign_ca_is_replaced(ca):
    foreign = certs.CA.load(*make_ca("foreign"), NOW)
    cert_pem, _ = certs.issue(foreign, "k2s-dns-coredns", 90, NOW)
    assert certs.renewal_reason(cert_pem, ca, "k2s-dns-coredns", NOW, MONTH) == "signed by another CA"


def test_a_certificate_for_another_name_is_replaced(ca):
    cert_pem, _ = certs.issue(ca, "someone", 90, NOW)
    assert "another name" in certs.renewal_reason(cert_pem, ca, "k2s-dns-coredns", NOW, MONTH)


def test_missing_or_garbage_certificates_are_replaced(ca):
    assert certs.renewal_reason(None, ca, "x", NOW, MONTH) == "no certificate yet"
    assert certs.renewal_reason(b"junk", ca, "x", NOW, MONTH) == "stored certificate is not valid PEM"


def test_client_urls_come_from_the_kubeadm_manifest():
    manifest = (
        "    - --advertise-client-urls=https://172.18.0.2:2379\n    - --listen-client-urls=https://127.0.0.1:2379"
    )
    assert certs.advertised_client_urls(manifest) == ["https://172.18.0.2:2379"]
    with pytest.raises(certs.CertError):
        certs.advertised_client_urls("spec: {}")


class FakeSecrets:
    def __init__(self):
        self.secrets: dict[str, dict] = {}
        self.deployments: dict[str, dict] = {
            kube.deployment_path("kube-system", "coredns"): {
                "metadata": {"resourceVersion": "1"},
                "spec": {"template": {"spec": {}}},
            },
        }

    def get(self, path):
        if path in self.deployments:
            return self.deployments[path]
        if path not in self.secrets:
            raise kube.ApiError(404, "not found")
        return self.secrets[path]

    def request(self, method, path, body):
        assert method == "POST"
        body["metadata"]["resourceVersion"] = "1"
        self.secrets[f"{path}/{body['metadata']['name']}"] = body

    def put(self, path, body):
        (self.deployments if path in self.deployments else self.secrets)[path] = body
        return body


@pytest.fixture
def pki(tmp_path, ca_pem) -> Path:
    (tmp_path / "ca.crt").write_bytes(ca_pem[0])
    (tmp_path / "ca.key").write_bytes(ca_pem[1])
    return tmp_path


def run(pki: Path, api: FakeSecrets, now: dt.datetime, *extra: str) -> int:
    return certs.main(
        [
            f"--pki-dir={pki}",
            "--client=kube-system/etcd-client-for-core-dns=k2s-dns-coredns",
            "--ca-secret=kube-system/etcd-ca",
            "--rollout=kube-system/coredns",
            "--days=90",
            "--endpoints-secret=k2s-dns/etcd-endpoints",
            "--endpoints=https://10.0.0.1:2379",
            "--label=app.kubernetes.io/part-of=k2s-dns",
            "--label=app.kubernetes.io/instance=k2s-dns",
            "--release=k2s-dns/k2s-dns",
            *extra,
        ],
        api,
        now,
    )


def secret(api: FakeSecrets, name: str) -> dict[str, bytes]:
    body = api.secrets[f"/api/v1/namespaces/{name}"]
    return {k: base64.b64decode(v) for k, v in body["data"].items()}


def test_job_publishes_client_cert_ca_cert_and_endpoints_but_never_the_ca_key(pki, ca_pem):
    api = FakeSecrets()
    assert run(pki, api, NOW) == 0
    client = secret(api, "kube-system/secrets/etcd-client-for-core-dns")
    assert set(client) == {"tls.crt", "tls.key"}
    assert secret(api, "kube-system/secrets/etcd-ca") == {"ca.crt": ca_pem[0]}
    assert secret(api, "k2s-dns/secrets/etcd-endpoints") == {"ETCD_URLS": b"https://10.0.0.1:2379"}
    for body in api.secrets.values():
        for value in body["data"].values():
            assert base64.b64decode(value) != ca_pem[1]
        # Every Secret it writes names its owner.
        assert body["metadata"]["annotations"] == {"k2s-dns.io/owner": "k2s-dns/k2s-dns"}
        assert body["metadata"]["labels"] == {
            "app.kubernetes.io/part-of": "k2s-dns",
            "app.kubernetes.io/instance": "k2s-dns",
        }
    # First issue: nothing to restart.
    assert "annotations" not in api.deployments[kube.deployment_path("kube-system", "coredns")]["spec"]["template"]


def test_job_renews_only_when_due_and_then_restarts_coredns(pki):
    api = FakeSecrets()
    run(pki, api, NOW)
    first = secret(api, "kube-system/secrets/etcd-client-for-core-dns")["tls.crt"]
    run(pki, api, NOW + dt.timedelta(days=10))
    assert secret(api, "kube-system/secrets/etcd-client-for-core-dns")["tls.crt"] == first
    run(pki, api, NOW + dt.timedelta(days=70))
    assert secret(api, "kube-system/secrets/etcd-client-for-core-dns")["tls.crt"] != first
    template = api.deployments[kube.deployment_path("kube-system", "coredns")]["spec"]["template"]
    assert "k2s-dns.io/certificate-rotated-at" in template["metadata"]["annotations"]


def test_job_fails_loudly_without_the_ca(tmp_path, capsys):
    assert run(tmp_path, FakeSecrets(), NOW) == 1
    assert "ca.crt" in capsys.readouterr().err


SECRETS = "/api/v1/namespaces/kube-system/secrets"


def foreign(api: FakeSecrets, name: str, metadata: dict | None = None) -> dict:
    """A Secret somebody else made (K2s's scripts create etcd-ca and etcd-client-for-core-dns)."""
    body = {
        "metadata": {"name": name, "resourceVersion": "7", **(metadata or {})},
        "data": {"ca.crt": base64.b64encode(b"theirs").decode()},
    }
    api.secrets[f"{SECRETS}/{name}"] = body
    return json.loads(json.dumps(body))


@pytest.mark.parametrize(
    ("metadata", "belongs_to"),
    [
        ({}, "no k2s-dns release: somebody else made it"),
        ({"annotations": {"k2s-dns.io/owner": "other/k2s-dns"}}, "k2s-dns release other/k2s-dns"),
        ({"labels": {"app.kubernetes.io/part-of": "k2s-dns", "app.kubernetes.io/instance": "x"}}, "release x"),
        (
            {"annotations": {"meta.helm.sh/release-name": "k2s-dns", "meta.helm.sh/release-namespace": "other"}},
            "Helm release other/k2s-dns",
        ),
    ],
    ids=["unlabelled", "other-release", "other-instance", "helm-other-namespace"],
)
def test_a_secret_that_is_not_ours_stops_the_job_before_anything_is_written(pki, capsys, metadata, belongs_to):
    api = FakeSecrets()
    before = foreign(api, "etcd-ca", metadata)
    assert run(pki, api, NOW) == 1
    err = capsys.readouterr().err
    assert "Secret kube-system/etcd-ca (it belongs to" in err and belongs_to in err
    assert "not made by release k2s-dns/k2s-dns" in err
    assert "etcd.adoptExistingSecrets=true" in err and "coredns.caSecret" in err
    assert api.secrets == {f"{SECRETS}/etcd-ca": before}, "nothing may be written"


def test_adopt_takes_a_foreign_secret_over(pki, ca_pem):
    api = FakeSecrets()
    foreign(api, "etcd-ca")
    assert run(pki, api, NOW, "--adopt") == 0
    adopted = api.secrets[f"{SECRETS}/etcd-ca"]
    assert adopted["metadata"]["annotations"]["k2s-dns.io/owner"] == "k2s-dns/k2s-dns"
    assert base64.b64decode(adopted["data"]["ca.crt"]) == ca_pem[0]


def test_secrets_of_an_earlier_chart_version_are_ours_and_get_the_annotation(pki):
    api = FakeSecrets()
    run(pki, api, NOW)
    for body in api.secrets.values():  # as the chart before the annotation wrote them
        del body["metadata"]["annotations"]
    first = secret(api, "kube-system/secrets/etcd-client-for-core-dns")["tls.crt"]
    assert run(pki, api, NOW + dt.timedelta(days=1)) == 0
    assert secret(api, "kube-system/secrets/etcd-client-for-core-dns")["tls.crt"] == first, "still current"
    for body in api.secrets.values():
        assert body["metadata"]["annotations"]["k2s-dns.io/owner"] == "k2s-dns/k2s-dns"


def test_upsert_refuses_a_foreign_secret_that_appeared_meanwhile():
    api = FakeSecrets()
    foreign(api, "etcd-ca")
    body = certs.secret_body("kube-system", "etcd-ca", {"ca.crt": b"ours"}, False, {}, "k2s-dns/k2s-dns")
    with pytest.raises(ownership.NotOurs, match="Secret kube-system/etcd-ca"):
        certs.upsert(api, body)
    certs.upsert(api, body, adopt=True)
    assert api.secrets[f"{SECRETS}/etcd-ca"]["data"]["ca.crt"] == base64.b64encode(b"ours").decode()
