"""Client certificates for the cluster's own (kubeadm) etcd, signed by its CA on the node.

Pure functions (issue, inspect, decide renewal) plus the Job entry point:

    python -m k2s_dns.certs --pki-dir /etc/k2s-dns/kubeadm-etcd-ca --release k2s-dns/k2s-dns \\
        --client kube-system/etcd-client-for-core-dns=k2s-dns-coredns \\
        --ca-secret kube-system/etcd-ca --rollout kube-system/coredns

Only the CA *certificate* ever leaves the node; the CA key is read from the
read-only hostPath and used in memory to sign.

Every Secret it writes carries the release's ownership (ownership.py). A Secret
of one of those names that exists and is not the release's is never written:
the Job stops before writing anything, naming it, unless --adopt.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import deployment, kube, ownership


def not_before(cert: x509.Certificate) -> dt.datetime:
    # cryptography < 42 (Debian bookworm ships 38) has only the naive UTC properties.
    return cert.not_valid_before.replace(tzinfo=dt.UTC)


def not_after(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_after.replace(tzinfo=dt.UTC)


class CertError(ValueError):
    """The CA or a certificate cannot be used; the message says why."""


@dataclass(frozen=True)
class CA:
    cert: x509.Certificate
    key: object

    @classmethod
    def load(cls, cert_pem: bytes, key_pem: bytes, now: dt.datetime) -> CA:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise CertError(f"{cert.subject.rfc4514_string()} is not a CA certificate")
        if cert.public_key().public_numbers() != key.public_key().public_numbers():
            raise CertError("the CA key does not belong to the CA certificate")
        if not not_before(cert) <= now <= not_after(cert):
            raise CertError(f"the etcd CA is not valid now (valid {not_before(cert)} to {not_after(cert)})")
        return cls(cert, key)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if cert.issuer != ca.subject:
        return False
    public = ca.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def issue(ca: CA, common_name: str, days: int, now: dt.datetime) -> tuple[bytes, bytes]:
    """A new client certificate and key (PEM) for common_name, valid for `days`, capped by the CA's expiry."""
    if days < 1:
        raise CertError("validity must be at least one day")
    key = ec.generate_private_key(ec.SECP256R1())
    expires = min(now + dt.timedelta(days=days), not_after(ca.cert))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(expires)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def renewal_reason(
    cert_pem: bytes | None, ca: CA, common_name: str, now: dt.datetime, renew_before: dt.timedelta
) -> str | None:
    """Why the stored certificate must be replaced, or None if it is still good."""
    if not cert_pem:
        return "no certificate yet"
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return "stored certificate is not valid PEM"
    if not signed_by(cert, ca.cert):
        return "signed by another CA"
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cn or cn[0].value != common_name:
        return f"issued for another name ({cn[0].value if cn else 'none'})"
    end = not_after(cert)
    if now >= end:
        return "expired"
    if end - now < renew_before:
        return f"expires {end.isoformat()}, less than {renew_before.days} days from now"
    return None


def advertised_client_urls(manifest: str) -> list[str]:
    """The etcd client URLs from kubeadm's static pod manifest (`--advertise-client-urls`)."""
    match = re.search(r"--advertise-client-urls=(\S+)", manifest)
    if not match:
        raise CertError("etcd manifest has no --advertise-client-urls")
    return [url for url in match.group(1).strip("\"'").split(",") if url]


def secret_body(
    namespace: str, name: str, data: dict[str, bytes], tls: bool, labels: dict[str, str], owner: str
) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {ownership.OWNER_ANNOTATION: owner},
        },
        "type": "kubernetes.io/tls" if tls else "Opaque",
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


def get_secret(client: kube.Client, namespace: str, name: str) -> dict | None:
    try:
        return client.get(kube.secret_path(namespace, name))
    except kube.ApiError as err:
        if err.status == 404:
            return None
        raise


def upsert(client: kube.Client, body: dict, adopt: bool = False) -> None:
    """Create or replace a Secret; one that exists and is not the owner's (its annotation) only with `adopt`."""
    meta = body["metadata"]
    namespace, name, owner = meta["namespace"], meta["name"], meta["annotations"][ownership.OWNER_ANNOTATION]
    current = get_secret(client, namespace, name)
    if current is None:
        client.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body)
        return
    if not adopt and not ownership.owned(current, owner):
        raise ownership.NotOurs(ownership.refusal([(namespace, name, current)], owner))
    meta["resourceVersion"] = current["metadata"]["resourceVersion"]
    client.put(kube.secret_path(namespace, name), body)


def read_secret(client: kube.Client, namespace: str, name: str) -> dict[str, bytes]:
    data = (get_secret(client, namespace, name) or {}).get("data") or {}
    return {key: base64.b64decode(value) for key, value in data.items()}


def claim_all(
    client: kube.Client, refs: list[tuple[str, str]], owner: str, labels: dict[str, str], adopt: bool
) -> None:
    """Before anything is written: stop, naming them, if any of these Secrets exists and is not the
    owner's (unless `adopt`); put the ownership on those of ours that lack the annotation (written by an
    earlier chart version) and on adopted ones, so that uninstall knows them."""
    existing = [(ns, name, obj) for ns, name in refs if (obj := get_secret(client, ns, name)) is not None]
    foreign = [(ns, name, obj) for ns, name, obj in existing if not ownership.owned(obj, owner)]
    if foreign and not adopt:
        raise ownership.NotOurs(ownership.refusal(foreign, owner))
    for ns, name, obj in existing:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if annotations.get(ownership.OWNER_ANNOTATION) != owner:
            client.put(kube.secret_path(ns, name), ownership.claim(obj, owner, labels))
            print(f"{ns}/{name}: {'adopted' if (ns, name, obj) in foreign else 'marked as ours'} ({owner})")


def restart(client: kube.Client, namespace: str, name: str, now: dt.datetime) -> None:
    """Roll a Deployment so it loads the new certificate (as `kubectl rollout restart` does)."""

    def stamp(deploy: dict) -> dict:
        template = deploy["spec"]["template"]
        template.setdefault("metadata", {}).setdefault("annotations", {})[deployment.ROTATED_ANNOTATION] = (
            now.isoformat()
        )
        return deploy

    try:
        kube.update_with_retry(client, kube.deployment_path(namespace, name), stamp)
    except kube.ApiError as err:
        if err.status != 404:  # not installed yet (pre-install): nothing to restart
            raise


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m k2s_dns.certs", description=__doc__.splitlines()[0])
    p.add_argument("--pki-dir", type=Path, default=Path("/etc/kubernetes/pki/etcd"))
    p.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="NAMESPACE/SECRET=COMMON_NAME",
        help="a client certificate Secret to keep valid",
    )
    p.add_argument(
        "--ca-secret",
        action="append",
        default=[],
        type=kube.namespaced,
        metavar="NAMESPACE/SECRET",
        help="a Secret that receives the CA certificate (ca.crt) only",
    )
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--renew-before-days", type=float, default=30, help="renew when less than this is left")
    p.add_argument("--manifest", type=Path, help="kubeadm's etcd.yaml, to publish the etcd client URLs")
    p.add_argument(
        "--endpoints-secret",
        type=kube.namespaced,
        metavar="NAMESPACE/SECRET",
        help="receives ETCD_URLS (comma-separated) discovered from --manifest",
    )
    p.add_argument("--endpoints", default="", help="etcd client URLs to publish instead of discovering them")
    p.add_argument(
        "--rollout",
        action="append",
        default=[],
        type=kube.namespaced,
        metavar="NAMESPACE/DEPLOYMENT",
        help="restarted when a certificate was renewed",
    )
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--release",
        required=True,
        metavar="NAMESPACE/RELEASE",
        help="the owner: every Secret written carries it; one that exists without it is not written",
    )
    p.add_argument("--adopt", action="store_true", help="take over Secrets that exist and are not the release's")
    return p


def main(argv: list[str] | None = None, client: kube.Client | None = None, now: dt.datetime | None = None) -> int:
    args = parser().parse_args(argv)
    now = now or dt.datetime.now(dt.UTC)
    labels = dict(item.split("=", 1) for item in args.label)
    try:
        client = client or kube.Client.in_cluster()
        ca = CA.load((args.pki_dir / "ca.crt").read_bytes(), (args.pki_dir / "ca.key").read_bytes(), now)
        clients = [(kube.namespaced(spec.partition("=")[0]), spec.partition("=")[2]) for spec in args.client]
        refs = [ref for ref, _ in clients] + list(args.ca_secret)
        if args.endpoints_secret:
            refs.append(args.endpoints_secret)
        claim_all(client, refs, args.release, labels, args.adopt)

        def write(namespace: str, name: str, data: dict[str, bytes], tls: bool) -> None:
            upsert(client, secret_body(namespace, name, data, tls, labels, args.release), args.adopt)

        renewed = False
        for (namespace, name), common_name in clients:
            current = read_secret(client, namespace, name).get("tls.crt")
            reason = renewal_reason(current, ca, common_name, now, dt.timedelta(days=args.renew_before_days))
            if reason is None:
                print(f"{namespace}/{name}: certificate for {common_name} is current")
                continue
            cert_pem, key_pem = issue(ca, common_name, args.days, now)
            write(namespace, name, {"tls.crt": cert_pem, "tls.key": key_pem}, True)
            print(f"{namespace}/{name}: issued a certificate for {common_name} ({reason})")
            renewed = renewed or current is not None
        for namespace, name in args.ca_secret:
            if read_secret(client, namespace, name).get("ca.crt") != ca.cert_pem:
                write(namespace, name, {"ca.crt": ca.cert_pem}, False)
                print(f"{namespace}/{name}: CA certificate published")
        if args.endpoints_secret:
            urls = args.endpoints.split(",") if args.endpoints else advertised_client_urls(args.manifest.read_text())
            namespace, name = args.endpoints_secret
            joined = ",".join(urls).encode()
            if read_secret(client, namespace, name).get("ETCD_URLS") != joined:
                write(namespace, name, {"ETCD_URLS": joined}, False)
                print(f"{namespace}/{name}: etcd endpoints {joined.decode()}")
        if renewed:
            for namespace, name in args.rollout:
                restart(client, namespace, name, now)
                print(f"restarted {namespace}/{name} to load the renewed certificate")
    except (CertError, OSError, kube.ApiError, ownership.NotOurs) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
