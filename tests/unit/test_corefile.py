"""The Corefile patcher as a pure function, on real-world Corefiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from k2s_dns import corefile
from k2s_dns.corefile import BEGIN_MARKER, CorefileError, EtcdSettings, patch, unpatch

HERE = Path(__file__).parent
VALID = sorted((HERE / "corefiles").glob("*.Corefile"))
INVALID = sorted((HERE / "corefiles-invalid").glob("*.Corefile"))
TLS = ("/etc/k2s-dns/etcd-client/tls.crt", "/etc/k2s-dns/etcd-client/tls.key", "/etc/k2s-dns/etcd-ca/ca.crt")


def read(path: Path) -> str:
    return path.read_bytes().decode()


def server_block_of(text: str) -> corefile.ServerBlock:
    return corefile.find_server_block(corefile.parse(text), ".:53")


def kubernetes_fallthrough(text: str) -> list[str] | None:
    block = server_block_of(text)
    k8s = next(d for d in block.directives if d.name == "kubernetes")
    for child in k8s.children or []:
        if child.name == "fallthrough":
            return child.args
    return None


@pytest.fixture
def settings() -> EtcdSettings:
    return EtcdSettings("cluster.local", "/skydns", ("https://etcd.k2s-dns.svc.cluster.local:2379",), TLS)


def test_at_least_ten_real_world_corefiles():
    assert len(VALID) >= 10


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_patch_adds_one_etcd_block_to_the_root_server_block(path, settings):
    original = read(path)
    patched = patch(original, ".:53", settings)
    block = server_block_of(patched)
    etcd = [d for d in block.directives if d.name == "etcd"]
    assert len(etcd) == 1
    assert etcd[0].args == ["cluster.local"]
    body = {c.name: c.args for c in etcd[0].children}
    assert body["path"] == ["/skydns"]
    assert body["endpoint"] == ["https://etcd.k2s-dns.svc.cluster.local:2379"]
    assert body["tls"] == list(TLS)
    assert patched.count(BEGIN_MARKER) == 1


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_patch_is_idempotent_and_unpatch_restores_bytes(path, settings):
    original = read(path)
    once = patch(original, ".:53", settings)
    assert patch(once, ".:53", settings) == once
    assert unpatch(once) == original


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_other_server_blocks_are_untouched(path, settings):
    original = read(path)
    patched = patch(original, ".:53", settings)
    before = corefile.parse(original)
    after = corefile.parse(patched)
    target = server_block_of(original)
    for old, new in zip(before, after, strict=True):
        if old.open_brace == target.open_brace:
            continue
        assert original[old.open_brace : old.close_brace] == patched[new.open_brace : new.close_brace]


def test_kubeadm_fallthrough_gains_the_zone(settings):
    patched = patch(read(HERE / "corefiles/kubeadm-1.34.Corefile"), ".:53", settings)
    assert kubernetes_fallthrough(patched) == ["in-addr.arpa", "ip6.arpa", "cluster.local"]


def test_fallthrough_for_every_zone_is_left_alone(settings):
    original = read(HERE / "corefiles/fallthrough-all.Corefile")
    patched = patch(original, ".:53", settings)
    assert kubernetes_fallthrough(patched) == []
    assert "k2s-dns: +" not in patched


def test_one_line_kubernetes_gets_a_block_with_fallthrough(settings):
    patched = patch(read(HERE / "corefiles/minimal-one-line-kubernetes.Corefile"), ".:53", settings)
    assert kubernetes_fallthrough(patched) == ["cluster.local"]


def test_zone_outside_the_kubernetes_zones_needs_no_fallthrough():
    original = read(HERE / "corefiles/kind-custom-domain.Corefile")
    patched = patch(original, ".:53", EtcdSettings("apps.example", "/skydns", ("http://10.0.0.1:2379",)))
    assert kubernetes_fallthrough(patched) == ["in-addr.arpa", "ip6.arpa"]
    assert "tls " not in patched


def test_subzone_of_the_cluster_domain_falls_through_only_for_itself():
    original = read(HERE / "corefiles/kubeadm-1.34.Corefile")
    patched = patch(original, ".:53", EtcdSettings("apps.cluster.local", "/skydns", ("http://e:2379",)))
    assert kubernetes_fallthrough(patched) == ["in-addr.arpa", "ip6.arpa", "apps.cluster.local"]


def test_crlf_corefile_stays_crlf(settings):
    patched = patch(read(HERE / "corefiles/k2s-windows-crlf.Corefile"), ".:53", settings)
    assert "\n" not in patched.replace("\r\n", "")


def test_repatch_with_new_settings_replaces_the_block(settings):
    original = read(HERE / "corefiles/kubeadm-1.34.Corefile")
    first = patch(original, ".:53", settings)
    moved = EtcdSettings("cluster.local", "/records", ("https://other:2379",), TLS)
    second = patch(first, ".:53", moved)
    assert second.count("etcd cluster.local {") == 1
    assert "path /records" in second and "path /skydns" not in second
    assert second.count("cluster.local # k2s-dns") == 1
    assert unpatch(second) == original


def test_unpatch_keeps_other_peoples_later_edits(settings):
    original = read(HERE / "corefiles/kubeadm-1.34.Corefile")
    patched = patch(original, ".:53", settings)
    edited = patched.replace("cache 30 {", "cache 60 {")
    assert unpatch(edited) == original.replace("cache 30 {", "cache 60 {")


def test_unpatch_of_an_unpatched_corefile_is_identity():
    original = read(HERE / "corefiles/k3s.Corefile")
    assert unpatch(original) == original


def test_unpatch_keeps_a_trailing_comment_on_the_fallthrough_line(settings):
    original = read(HERE / "corefiles/comments-and-tabs.Corefile")
    patched = patch(original, ".:53", settings)
    assert "ip6.arpa cluster.local # k2s-dns: +cluster.local   # reverse lookups fall through" in patched
    assert unpatch(patched) == original


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("foreign-etcd-block", "already has an etcd plugin"),
        ("unbalanced", "never closed"),
        ("no-root-server-block", "no server block for '.:53'"),
        ("unterminated-quote", "unterminated quoted string"),
        ("extra-closing-brace", "unexpected '}'"),
    ],
)
def test_corefiles_it_cannot_understand_are_refused(name, message, settings):
    with pytest.raises(CorefileError, match=message):
        patch(read(HERE / f"corefiles-invalid/{name}.Corefile"), ".:53", settings)


def test_invalid_fixtures_are_all_covered():
    covered = {"foreign-etcd-block", "unbalanced", "no-root-server-block", "unterminated-quote", "extra-closing-brace"}
    assert {p.stem for p in INVALID} == covered


def test_unpatch_refuses_a_block_without_end_marker(settings):
    patched = patch(read(HERE / "corefiles/kubeadm-1.34.Corefile"), ".:53", settings)
    with pytest.raises(CorefileError, match="no end marker"):
        unpatch(patched.replace(corefile.END_MARKER, ""))


def test_env_placeholders_are_words_not_braces():
    tokens = [t.text for t in corefile.tokenize(".:53 {\n kubernetes {$DOMAIN}\n}\n")]
    assert tokens == [".:53", "{", "kubernetes", "{$DOMAIN}", "}"]
