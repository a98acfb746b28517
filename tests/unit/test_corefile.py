"""The Corefile patcher as a pure function, on real-world Corefiles."""

from __future__ import annotations

import re
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


REFUSED = [
    ("foreign-etcd-block", ".:53", "already has an etcd plugin"),
    ("unbalanced", ".:53", "never closed"),
    ("no-root-server-block", ".:53", "no server block for '.:53'"),
    ("unterminated-quote", ".:53", "unterminated quoted string"),
    ("extra-closing-brace", ".:53", "unexpected '}'"),
    ("import-snippet-with-kubernetes", None, "imports snippet"),
    ("k2s-sed-etcd-block", None, "already has an etcd plugin"),
]


@pytest.mark.parametrize(("name", "server", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_corefiles_it_cannot_understand_are_refused(name, server, message, settings):
    with pytest.raises(CorefileError, match=message):
        patch(read(HERE / f"corefiles-invalid/{name}.Corefile"), server, settings)


def test_invalid_fixtures_are_all_covered():
    assert {p.stem for p in INVALID} == {name for name, _, _ in REFUSED}


def test_unpatch_refuses_a_block_without_end_marker(settings):
    patched = patch(read(HERE / "corefiles/kubeadm-1.34.Corefile"), ".:53", settings)
    with pytest.raises(CorefileError, match="no end marker"):
        unpatch(patched.replace(corefile.END_MARKER, ""))


def test_env_placeholders_are_words_not_braces():
    tokens = [t.text for t in corefile.tokenize(".:53 {\n kubernetes {$DOMAIN}\n}\n")]
    assert tokens == [".:53", "{", "kubernetes", "{$DOMAIN}", "}"]


# --- which server block serves the zone ---------------------------------------------------------------------


def serving_label(text: str, zone: str = "cluster.local") -> str:
    return corefile.find_serving_block(corefile.parse(text), zone).label


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (".:53 {\n whoami\n}\ncluster.local {\n whoami\n}\n", "cluster.local"),
        (".:53 {\n whoami\n}\ncluster.local:53 {\n whoami\n}\n", "cluster.local:53"),
        (".:53 {\n whoami\n}\ndns://cluster.local:53 {\n whoami\n}\n", "dns://cluster.local:53"),
        (".:53 {\n whoami\n}\nCLUSTER.LOCAL.:53 {\n whoami\n}\n", "CLUSTER.LOCAL.:53"),
        (":53 {\n whoami\n}\nexample.org {\n whoami\n}\n", ":53"),
        (". {\n whoami\n}\n", "."),
        ("dns://. {\n whoami\n}\n", "dns://."),
        (".:53 {\n whoami\n}\nexample.org cluster.local:53 {\n whoami\n}\n", "example.org cluster.local:53"),
        (
            ".:53 {\n whoami\n}\nexample.org:53,\n    cluster.local:53 {\n whoami\n}\n",
            "example.org:53, cluster.local:53",
        ),
        (".:53 {\n whoami\n}\nlocal:53 {\n whoami\n}\nsvc.cluster.local:53 {\n whoami\n}\n", "local:53"),
        # other ports and transports never see plain DNS queries on port 53
        (".:53 {\n whoami\n}\ncluster.local:5353 {\n whoami\n}\n", ".:53"),
        (".:53 {\n whoami\n}\ntls://cluster.local {\n whoami\n}\n", ".:53"),
        (".:53 {\n whoami\n}\ngrpc://cluster.local:53 {\n whoami\n}\n", ".:53"),
        (".:53 {\n whoami\n}\nhttps://cluster.local {\n whoami\n}\n", ".:53"),
        # a reverse zone written as a network does not hold a forward zone
        (".:53 {\n whoami\n}\n10.0.0.0/8 {\n whoami\n}\n", ".:53"),
    ],
)
def test_the_serving_block_is_the_most_specific_key_on_port_53(text, expected):
    assert serving_label(text) == expected


def test_network_keys_become_reverse_zones():
    assert corefile.parse_key("10.0.0.0/24").zones == ("0.0.10.in-addr.arpa.",)
    assert corefile.parse_key("dns://10.0.0.0/15:1053") == corefile.Address(
        "dns", ("0.10.in-addr.arpa.", "1.10.in-addr.arpa."), "1053"
    )
    assert corefile.parse_key("tls://.") == corefile.Address("tls", (".",), "853")


def test_no_block_for_the_zone_on_port_53_is_refused(settings):
    with pytest.raises(CorefileError, match=re.escape("no server block serves 'cluster.local' on port 53")):
        patch(".:5353 {\n    kubernetes cluster.local\n}\n", None, settings)


def test_two_blocks_for_the_same_zone_are_refused(settings):
    text = ".:53 {\n    bind 10.0.0.1\n    whoami\n}\n. {\n    bind 10.0.0.2\n    whoami\n}\n"
    with pytest.raises(CorefileError, match=r"more than one server block serves 'cluster.local' .*lines 1, 5"):
        patch(text, None, settings)


def test_zone_specific_server_block_gets_the_etcd_block_and_fallthrough(settings):
    original = read(HERE / "corefiles/zone-specific-server-block.Corefile")
    patched = patch(original, None, settings)
    blocks = corefile.parse(patched)
    target = corefile.find_server_block(blocks, "cluster.local:53")
    assert [d.name for d in target.directives] == ["errors", "kubernetes", "etcd", "cache"]
    k8s = target.directives[1]
    assert [c.args for c in k8s.children if c.name == "fallthrough"] == [["cluster.local"]]
    root = corefile.find_server_block(blocks, ".:53")
    assert "etcd" not in [d.name for d in root.directives]
    assert "} # cluster Services\n    # BEGIN k2s-dns" in patched
    assert unpatch(patched) == original
    assert patch(patched, None, settings) == patched


def test_server_block_override_still_wins(settings):
    original = read(HERE / "corefiles/zone-specific-server-block.Corefile")
    patched = patch(original, ".:53", settings)
    assert "etcd" in [d.name for d in server_block_of(patched).directives]


def test_override_with_a_block_that_never_sees_the_zone_is_refused(settings):
    original = read(HERE / "corefiles/multiple-server-blocks.Corefile")
    with pytest.raises(CorefileError, match=r"server block 'example\.org:53' .* does not serve 'cluster\.local'"):
        patch(original, "example.org:53", settings)


def test_keys_in_any_spelling_match_the_override(settings):
    for server in (".", ":53", "dns://.:53", ".:53"):
        patched = patch(read(HERE / "corefiles/multiple-server-blocks.Corefile"), server, settings)
        assert patched.count(BEGIN_MARKER) == 1


def test_root_block_fixtures_get_the_same_result_without_an_override(settings):
    for path in VALID:
        if path.stem == "zone-specific-server-block":
            continue  # the one where the override points at the wrong block
        original = read(path)
        assert patch(original, None, settings) == patch(original, ".:53", settings), path.stem


# --- comments and layout --------------------------------------------------------------------------------------


def test_comment_after_the_kubernetes_block_stays_on_its_line(settings):
    original = read(HERE / "corefiles/trailing-comment-after-kubernetes-block.Corefile")
    patched = patch(original, None, settings)
    assert "    } # cluster Services\n    # BEGIN k2s-dns" in patched
    assert f"\n    {corefile.END_MARKER}\n    prometheus :9153\n" in patched
    assert unpatch(patched) == original
    assert patch(patched, None, settings) == patched


def test_comment_after_one_line_kubernetes_stays_on_its_line(settings):
    original = read(HERE / "corefiles/one-line-kubernetes-with-comment.Corefile")
    patched = patch(original, None, settings)
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa { # k2s-dns: +block # Services\n" in patched
    assert kubernetes_fallthrough(patched) == ["cluster.local"]
    assert f"\n    {corefile.END_MARKER}\n    prometheus :9153\n" in patched
    assert unpatch(patched) == original
    assert patch(patched, None, settings) == patched


# What k2s-dns 0.1 wrote for the two fixtures above: the comment ended up on the END marker line.
PATCHED_BY_0_1 = {
    "trailing-comment-after-kubernetes-block": (
        "       fallthrough in-addr.arpa ip6.arpa cluster.local # k2s-dns: +cluster.local\n       ttl 30\n    }\n"
        f"    {BEGIN_MARKER}\n    etcd cluster.local {{\n        path /skydns\n        endpoint https://e:2379\n"
        f"    }}\n    {corefile.END_MARKER} # cluster Services\n"
    ),
    "one-line-kubernetes-with-comment": (
        "    kubernetes cluster.local in-addr.arpa ip6.arpa { # k2s-dns: +block\n"
        "        fallthrough cluster.local # k2s-dns: added\n    } # k2s-dns: added\n"
        f"    {BEGIN_MARKER}\n    etcd cluster.local {{\n        path /skydns\n        endpoint https://e:2379\n"
        f"    }}\n    {corefile.END_MARKER} # Services\n"
    ),
}
ORIGINAL_LINES = {
    "trailing-comment-after-kubernetes-block": (
        "       fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    } # cluster Services\n"
    ),
    "one-line-kubernetes-with-comment": "    kubernetes cluster.local in-addr.arpa ip6.arpa # Services\n",
}


@pytest.mark.parametrize("name", sorted(PATCHED_BY_0_1))
def test_corefiles_broken_by_0_1_are_restored(name, settings):
    original = read(HERE / f"corefiles/{name}.Corefile")
    assert ORIGINAL_LINES[name] in original
    broken = original.replace(ORIGINAL_LINES[name], PATCHED_BY_0_1[name])
    assert unpatch(broken) == original
    assert patch(broken, None, settings) == patch(original, None, settings)


def test_closing_brace_sharing_a_line_is_split_and_joined_again(settings):
    original = ".:53 {\n    kubernetes cluster.local {\n       pods insecure }   # odd\n    cache 30\n}\n"
    patched = patch(original, None, settings)
    assert "pods insecure \n       fallthrough cluster.local # k2s-dns: +split\n    }   # odd\n" in patched
    assert kubernetes_fallthrough(patched) == ["cluster.local"]
    assert unpatch(patched) == original


def test_mixed_line_endings_are_kept_line_by_line(settings):
    original = ".:53 {\r\n    errors\n    kubernetes cluster.local\r\n    cache 30\n}\r\n"
    patched = patch(original, None, settings)
    assert "kubernetes cluster.local { # k2s-dns: +block\r\n        fallthrough" in patched
    assert unpatch(patched) == original


def test_fallthrough_zone_next_to_a_comment_without_space(settings):
    original = ".:53 {\n    kubernetes cluster.local {\n        fallthrough in-addr.arpa#reverse\n    }\n}\n"
    patched = patch(original, None, settings)
    assert kubernetes_fallthrough(patched) == ["in-addr.arpa", "cluster.local"]
    assert unpatch(patched) == original


def test_hash_hides_the_rest_of_a_word_or_after_a_space_the_line_as_in_coredns():
    assert [t.text for t in corefile.tokenize("cache 30#x y # z {\n}")] == ["cache", "30", "y", "}"]
    assert [t.text for t in corefile.tokenize('a"b c" foo{ "{" \ufeff')] == ['a"b', 'c"', "foo{", '"{"', "\ufeff"]


def test_closing_brace_of_a_server_block_after_a_directive_is_refused(settings):
    with pytest.raises(
        CorefileError, match=re.escape("line 2: the '}' closing server block '.:53' must start its own line")
    ):
        patch(".:53 {\n    kubernetes cluster.local }\n", None, settings)


def test_bad_zone_is_refused():
    with pytest.raises(CorefileError, match="not a DNS zone name"):
        patch(".:53 {\n    whoami\n}\n", None, EtcdSettings("a zone # with } junk", "/skydns", ("http://e:2379",)))


# --- snippets and imports -------------------------------------------------------------------------------------


def test_snippets_are_not_server_blocks():
    parsed = corefile.parse_corefile(read(HERE / "corefiles/snippet-and-import.Corefile"))
    assert [b.label for b in parsed.blocks] == [".:53"]
    assert list(parsed.snippets) == ["common"]
    assert [d.name for d in parsed.snippets["common"].directives] == ["errors", "log"]


def test_snippet_with_kubernetes_is_refused_with_line_numbers(settings):
    with pytest.raises(CorefileError) as err:
        patch(read(HERE / "corefiles-invalid/import-snippet-with-kubernetes.Corefile"), None, settings)
    assert str(err.value) == (
        "line 12: server block '.:53' imports snippet (cluster) (defined at line 2), which contains the kubernetes "
        "plugin (line 3); k2s-dns cannot make it fall through for cluster.local inside a snippet. Inline the "
        "kubernetes plugin into the server block (instead of the import), or set coredns.serverBlock to a server "
        "block that has it inline"
    )


def test_snippet_importing_a_snippet_with_etcd_is_refused(settings):
    text = (
        "(records) {\n    etcd cluster.local\n}\n(common) {\n    errors\n    import records\n}\n"
        ".:53 {\n    import common\n    kubernetes cluster.local\n}\n"
    )
    with pytest.raises(CorefileError) as err:
        patch(text, None, settings)
    assert str(err.value).startswith(
        "line 9: server block '.:53' imports snippet (common) (defined at line 4), through snippet (records) "
        "(line 1), which contains an etcd plugin (line 2), and CoreDNS allows one per server block."
    )


def test_snippet_with_other_plugins_is_fine(settings):
    original = read(HERE / "corefiles/snippet-and-import.Corefile")
    patched = patch(original, None, settings)
    assert patched.count("etcd cluster.local {") == 1
    assert unpatch(patched) == original


def test_file_import_without_kubernetes_inline_is_refused(settings):
    text = ".:53 {\n    errors\n    import /etc/coredns/custom/*.conf\n    forward . /etc/resolv.conf\n}\n"
    with pytest.raises(CorefileError) as err:
        patch(text, None, settings)
    assert str(err.value).startswith(
        "line 3: server block '.:53' imports '/etc/coredns/custom/*.conf', which k2s-dns cannot read, and has no "
        "kubernetes plugin of its own"
    )


def test_file_import_before_the_etcd_block_is_refused(settings):
    text = ".:53 {\n    import /etc/coredns/extra.conf\n    kubernetes cluster.local\n    cache 30\n}\n"
    with pytest.raises(CorefileError) as err:
        patch(text, None, settings)
    assert str(err.value) == (
        "line 2: server block '.:53' imports '/etc/coredns/extra.conf' before line 4, where the k2s-dns etcd block "
        "goes; k2s-dns cannot read it, and an etcd plugin in it would be used instead of the k2s-dns one. Move the "
        "import below the kubernetes plugin (line 3), or inline its content"
    )


def test_k3s_override_import_after_kubernetes_is_fine(settings):
    original = read(HERE / "corefiles/k3s.Corefile")
    assert unpatch(patch(original, None, settings)) == original


def test_snippet_defined_after_its_import_is_a_file_to_coredns(settings):
    text = ".:53 {\n    import late\n    kubernetes cluster.local\n}\n(late) {\n    log\n}\n"
    with pytest.raises(CorefileError, match=re.escape("line 2: server block '.:53' imports 'late' before line 4")):
        patch(text, None, settings)


def test_import_inside_the_kubernetes_block_is_refused(settings):
    text = ".:53 {\n    kubernetes cluster.local {\n        import /etc/coredns/k8s.conf\n    }\n}\n"
    with pytest.raises(
        CorefileError, match=r"line 3: the kubernetes plugin \(line 2\) imports '/etc/coredns/k8s.conf'"
    ):
        patch(text, None, settings)


def test_server_block_from_a_top_level_snippet_is_refused(settings):
    text = "(zones) {\n    cluster.local:53 {\n        whoami\n    }\n}\nimport zones\n.:53 {\n    whoami\n}\n"
    with pytest.raises(CorefileError, match=r"line 6: the server block 'cluster.local:53' for 'cluster.local' comes"):
        patch(text, None, settings)


# --- adopting an etcd block someone else wrote ----------------------------------------------------------------


def test_k2s_sed_etcd_block_is_refused_naming_the_switch(settings):
    with pytest.raises(CorefileError) as err:
        patch(read(HERE / "corefiles-invalid/k2s-sed-etcd-block.Corefile"), None, settings)
    assert str(err.value) == (
        "line 12: server block '.:53' already has an etcd plugin for cluster.local not managed by k2s-dns, and "
        "CoreDNS allows one per server block. To let k2s-dns replace it with its own (and put it back on "
        "uninstall), set coredns.patch.adoptExistingEtcdBlock=true; or remove it"
    )


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_k2s_sed_etcd_block_is_adopted_and_put_back(eol, settings):
    original = read(HERE / "corefiles-invalid/k2s-sed-etcd-block.Corefile").replace("\n", eol)
    patched = patch(original, None, settings, adopt_existing=True)
    etcd = [d for d in server_block_of(patched).directives if d.name == "etcd"]
    assert len(etcd) == 1
    assert {c.name: c.args for c in etcd[0].children}["endpoint"] == ["https://etcd.k2s-dns.svc.cluster.local:2379"]
    assert f"    {corefile.ADOPTED_PREFIX}        endpoint https://172.19.1.100:2379{eol}" in patched
    assert patch(patched, None, settings, adopt_existing=True) == patched
    assert unpatch(patched) == original
    assert "\n" not in patched.replace(eol, "")


def test_switch_does_not_adopt_an_etcd_block_for_another_zone(settings):
    with pytest.raises(CorefileError) as err:
        patch(read(HERE / "corefiles-invalid/foreign-etcd-block.Corefile"), None, settings, adopt_existing=True)
    assert str(err.value).endswith(
        "coredns.patch.adoptExistingEtcdBlock only takes over an etcd plugin for exactly cluster.local: remove this "
        "one, or merge its zones by hand"
    )


def test_unpatch_keeps_edits_made_after_adoption(settings):
    original = read(HERE / "corefiles-invalid/k2s-sed-etcd-block.Corefile")
    patched = patch(original, None, settings, adopt_existing=True)
    edited = patched.replace("cache 30", "cache 45")
    assert unpatch(edited) == original.replace("cache 30", "cache 45")


# --- NodeLocal DNSCache ---------------------------------------------------------------------------------------

NODELOCAL = sorted((HERE / "corefiles/node-local-dns").glob("*.Corefile"))


@pytest.mark.parametrize("path", NODELOCAL, ids=lambda p: p.stem)
def test_nodelocal_forwards_a_zone_outside_the_cluster_domain_to_coredns(path):
    original = read(path)
    patched = corefile.nodelocal_patch(original, "apps.k2s.local", "cluster.local")
    blocks = corefile.parse(patched)
    added = corefile.find_serving_block(blocks, "apps.k2s.local")
    model = corefile.find_serving_block(blocks, "cluster.local")
    assert added.label == "apps.k2s.local:53"
    same = ("bind", "forward", "cache", "prometheus")
    assert [(d.name, d.args) for d in added.directives if d.name in same] == [
        (d.name, d.args) for d in model.directives if d.name in same
    ]
    assert "health" not in [d.name for d in added.directives]
    assert corefile.nodelocal_patch(patched, "apps.k2s.local", "cluster.local") == patched
    assert corefile.nodelocal_unpatch(patched) == original
    assert corefile.unpatch(patched) == patched  # the CoreDNS patcher leaves node-local-dns markers alone


def test_nodelocal_zone_inside_the_cluster_domain_needs_nothing():
    original = read(HERE / "corefiles/node-local-dns/iptables-mode.Corefile")
    assert corefile.nodelocal_patch(original, "apps.cluster.local", "cluster.local") == original
    assert corefile.nodelocal_patch(original, "cluster.local", "cluster.local") == original


def test_nodelocal_zone_already_forwarded_needs_nothing():
    original = read(HERE / "corefiles/node-local-dns/iptables-mode.Corefile")
    once = corefile.nodelocal_patch(original, "apps.k2s.local", "cluster.local")
    by_hand = once.replace(corefile.NODELOCAL_BEGIN_MARKER + "\n", "").replace(corefile.NODELOCAL_END_MARKER + "\n", "")
    assert corefile.nodelocal_patch(by_hand, "apps.k2s.local", "cluster.local") == by_hand
    assert corefile.nodelocal_patch(by_hand, "x.apps.k2s.local", "cluster.local") == by_hand


def test_nodelocal_zone_forwarded_elsewhere_is_refused():
    original = read(HERE / "corefiles/node-local-dns/iptables-mode.Corefile")
    text = original + "k2s.local:53 {\n    forward . 10.0.0.53\n}\n"
    with pytest.raises(CorefileError, match=r"'k2s.local:53' \(line 47\) serves 'apps.k2s.local' but does not"):
        corefile.nodelocal_patch(text, "apps.k2s.local", "cluster.local")


def test_nodelocal_without_a_cluster_domain_block_says_what_to_add():
    with pytest.raises(CorefileError, match=re.escape("add a server block 'apps.k2s.local:53' with the same bind")):
        corefile.nodelocal_patch(".:53 {\n    forward . 8.8.8.8\n}\n", "apps.k2s.local", "cluster.local")


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_nodelocal_cluster_block_last_without_final_line_ending(eol):
    original = eol.join([".:53 {", "    forward . 8.8.8.8", "}", "cluster.local:53 {", "    forward . 10.96.0.10", "}"])
    patched = corefile.nodelocal_patch(original, "example.test", "cluster.local")
    assert f"}}{eol}{corefile.NODELOCAL_BEGIN_MARKER}{eol}example.test:53 {{" in patched
    assert patched.endswith(corefile.NODELOCAL_END_MARKER)
    assert corefile.nodelocal_unpatch(patched) == original


def test_fallthrough_sharing_a_line_with_the_closing_brace_is_refused(settings):
    text = ".:53 {\n    kubernetes cluster.local {\n       fallthrough in-addr.arpa }\n}\n"
    with pytest.raises(CorefileError, match="line 3: the kubernetes plugin's fallthrough shares its line"):
        patch(text, None, settings)


def test_unpatch_finds_a_reindented_block(settings):
    original = read(HERE / "corefiles/kubeadm-1.34.Corefile")
    patched = patch(original, None, settings)
    start, end = patched.index(BEGIN_MARKER), patched.index(corefile.END_MARKER)
    reindented = patched[:start] + patched[start:end].replace("\n    ", "\n\t\t") + patched[end:]
    assert reindented != patched
    assert unpatch(reindented) == original


# --- caching the zone's answers (cache_zone) ------------------------------------------------------------------

KUBEADM_CACHE = "    cache 30 {\n       disable success cluster.local\n       disable denial cluster.local\n    }\n"
KUBEADM_CACHE_PATCHED = (
    "    cache 30 {\n"
    "       # k2s-dns: replaced: disable success cluster.local\n"
    "       disable success svc.cluster.local pod.cluster.local in-addr.arpa ip6.arpa # k2s-dns: added\n"
    "       disable denial cluster.local\n"
    "    }\n"
)


def disabled(text: str, kind: str, server: str = ".:53") -> list[str] | None:
    """The zones CoreDNS keeps out of the success or denial cache in a server block (it uses the last line)."""
    block = corefile.find_server_block(corefile.parse(text), server)
    cache = next(d for d in block.directives if d.name == "cache")
    lines = [c.args[1:] for c in cache.children or [] if c.name == "disable" and c.args[:1] == [kind]]
    return lines[-1] if lines else None


def test_kubeadm_cache_stanza_caches_the_zone_but_not_the_kubernetes_plugins_answers(settings):
    original = read(HERE / "corefiles/kubeadm-1.34.Corefile")
    assert KUBEADM_CACHE in original
    patched = patch(original, None, settings)
    assert KUBEADM_CACHE_PATCHED in patched
    assert disabled(patched, "success") == ["svc.cluster.local", "pod.cluster.local", "in-addr.arpa", "ip6.arpa"]
    assert disabled(patched, "denial") == disabled(original, "denial") == ["cluster.local"]
    assert patch(patched, None, settings) == patched
    assert unpatch(patched) == original


def test_cache_stanza_is_left_alone_when_switched_off(settings):
    original = read(HERE / "corefiles/kubeadm-1.34.Corefile")
    off = patch(original, None, settings, cache_zone=False)
    assert KUBEADM_CACHE in off and "replaced" not in off
    assert unpatch(off) == original
    # Switching it off on a patched Corefile (helm upgrade) puts the line back as it was.
    assert patch(patch(original, None, settings), None, settings, cache_zone=False) == off
    assert patch(off, None, settings) == patch(original, None, settings)


def test_cache_stanza_of_a_subzone_of_the_cluster_domain(settings):
    original = read(HERE / "corefiles/kubeadm-1.34.Corefile")
    patched = patch(original, None, EtcdSettings("apps.cluster.local", "/skydns", ("http://e:2379",)))
    assert KUBEADM_CACHE_PATCHED in patched
    assert unpatch(patched) == original


def test_zone_outside_the_cluster_domain_leaves_the_cache_alone():
    original = read(HERE / "corefiles/kubeadm-1.34.Corefile")
    patched = patch(original, None, EtcdSettings("apps.k2s.local", "/skydns", ("http://e:2379",)))
    assert KUBEADM_CACHE in patched
    assert unpatch(patched) == original


def test_custom_cluster_domain_is_narrowed_under_its_own_name():
    original = read(HERE / "corefiles/kind-custom-domain.Corefile")
    patched = patch(original, None, EtcdSettings("apps.k2s.local", "/skydns", ("http://e:2379",)))
    assert disabled(patched, "success") == ["svc.k2s.local", "pod.k2s.local", "in-addr.arpa", "ip6.arpa"]
    assert disabled(patched, "denial") == ["k2s.local"]
    assert unpatch(patched) == original
    # cluster.local is no kubernetes zone there: nothing to narrow.
    assert "replaced" not in patch(original, None, settings_for("cluster.local"))


def settings_for(zone: str) -> EtcdSettings:
    return EtcdSettings(zone, "/skydns", ("http://e:2379",))


@pytest.mark.parametrize(
    "cache",
    [
        "    cache 30\n",
        "    cache 30 {\n        disable denial cluster.local\n    }\n",
        "    cache 30 {\n        disable success\n    }\n",  # every zone: not just the cluster domain
        "    cache 30 {\n        disable success example.org\n    }\n",
        "    cache 30 {\n        disable success local\n    }\n",  # a parent of the domain, not the domain
        # CoreDNS uses the last disable success line, and that one does not name the domain.
        "    cache 30 {\n        disable success cluster.local\n        disable success example.org\n    }\n",
        # another zone on the line still holds the zone
        "    cache 30 {\n        disable success cluster.local local\n    }\n",
        # not a line of its own
        "    cache 30 { disable success cluster.local\n    }\n",
        "    cache 30 {\n        disable success cluster.local }\n",
    ],
    ids=[
        "no-block",
        "denial-only",
        "success-everywhere",
        "other-zone",
        "parent-zone",
        "last-line-wins",
        "still-held",
        "after-brace",
        "before-brace",
    ],
)
def test_cache_stanzas_that_do_not_keep_the_domain_uncached_are_left_alone(cache, settings):
    original = (
        ".:53 {\n    kubernetes cluster.local in-addr.arpa {\n        fallthrough in-addr.arpa\n    }\n" + cache + "}\n"
    )
    patched = patch(original, None, settings)
    assert cache in patched and "replaced" not in patched
    assert unpatch(patched) == original


def test_zone_under_svc_gains_nothing_and_is_left_alone(settings):
    original = read(HERE / "corefiles/kubeadm-1.34.Corefile")
    patched = patch(original, None, settings_for("ingress.svc.cluster.local"))
    assert KUBEADM_CACHE in patched
    assert unpatch(patched) == original


def test_kubernetes_on_the_root_zone_is_left_alone(settings):
    original = (
        ".:53 {\n    kubernetes {\n        fallthrough\n    }\n    cache 30 {\n        disable success .\n    }\n}\n"
    )
    patched = patch(original, None, settings)
    assert "replaced" not in patched


def test_cache_last_disable_success_line_is_the_one_narrowed(settings):
    original = (
        ".:53 {\n    kubernetes cluster.local\n    cache 30 {\n        disable success example.org\n"
        "        disable success cluster.local example.org\n    }\n}\n"
    )
    patched = patch(original, None, settings)
    assert disabled(patched, "success") == ["svc.cluster.local", "pod.cluster.local", "example.org"]
    assert "        disable success example.org\n        # k2s-dns: replaced:" in patched
    assert unpatch(patched) == original


def test_cache_line_comment_indent_and_crlf_come_back_byte_for_byte(settings):
    original = (
        ".:53 {\r\n\tkubernetes Cluster.Local. in-addr.arpa\r\n\tcache 30 {\r\n"
        "\t\tdisable  success\tCluster.Local.   # no stale Services\r\n"
        "\t\tdisable denial Cluster.Local.\r\n\t}\r\n}\r\n"
    )
    patched = patch(original, None, settings)
    assert (
        "\t\t# k2s-dns: replaced: disable  success\tCluster.Local.   # no stale Services\r\n"
        "\t\tdisable success svc.Cluster.Local. pod.Cluster.Local. in-addr.arpa # k2s-dns: added\r\n"
    ) in patched
    assert "\n" not in patched.replace("\r\n", "")
    assert unpatch(patched) == original
    assert patch(patched, None, settings) == patched


def test_kubernetes_networks_become_the_reverse_zones_kept_uncached(settings):
    original = (
        ".:53 {\n    kubernetes cluster.local 10.96.0.0/12 fd00::/108\n"
        "    cache 30 {\n        disable success cluster.local\n    }\n}\n"
    )
    patched = patch(original, None, settings)
    success = disabled(patched, "success")
    assert success[:2] == ["svc.cluster.local", "pod.cluster.local"]
    assert success[2:18] == [f"{n}.10.in-addr.arpa" for n in range(96, 112)]
    assert len(success) == 18 + 1 and success[-1].endswith(".ip6.arpa")
    assert unpatch(patched) == original


def test_zone_server_block_without_reverse_zones(settings):
    text = (
        "cluster.local:53 {\n    kubernetes {\n        pods insecure\n    }\n"
        "    cache 30 {\n        disable success cluster.local\n        disable denial cluster.local\n    }\n}\n"
        ".:53 {\n    forward . /etc/resolv.conf\n    cache 30\n}\n"
    )
    patched = patch(text, None, settings)
    assert disabled(patched, "success", "cluster.local:53") == ["svc.cluster.local", "pod.cluster.local"]
    assert unpatch(patched) == text


def test_unpatch_keeps_later_edits_next_to_the_replaced_cache_line(settings):
    original = read(HERE / "corefiles/kubeadm-1.34.Corefile")
    patched = patch(original, None, settings)
    edited = patched.replace("disable denial cluster.local", "disable denial cluster.local example.org")
    assert unpatch(edited) == original.replace(
        "disable denial cluster.local", "disable denial cluster.local example.org"
    )
