"""The Corefile patcher as a pure function, on real-world Corefiles."""

from __future__ import annotations

import dataclasses
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


def managed(text: str) -> corefile.ServerBlock:
    block = corefile.managed_block(text)
    assert block is not None
    return block


def region(text: str) -> str:
    start = text.index(BEGIN_MARKER)
    end = text.index(corefile.END_MARKER, start)
    return text[corefile._line_start(text, start) : corefile._after_line(text, end)]


def view_regex(block: corefile.ServerBlock) -> re.Pattern[str]:
    view = next(d for d in block.directives if d.name == "view")
    expr = " ".join(view.children[0].args)
    match = re.fullmatch(r"not \(name\(\) matches '(.*)'\)", expr)
    assert match, expr
    return re.compile(match.group(1).replace("(?i)", ""), re.IGNORECASE)


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


def settings_for(zone: str) -> EtcdSettings:
    return EtcdSettings(zone, "/skydns", ("http://e:2379",))


def test_at_least_ten_real_world_corefiles():
    assert len(VALID) >= 10


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_patch_adds_a_server_block_for_the_zone_and_changes_nothing_else(path, settings):
    original = read(path)
    patched = patch(original, ".:53", settings)
    block = managed(patched)
    assert block.label == "cluster.local:53"
    etcd = [d for d in block.directives if d.name == "etcd"]
    assert len(etcd) == 1
    assert etcd[0].args == ["cluster.local"]
    body = {c.name: c.args for c in etcd[0].children}
    assert body["path"] == ["/skydns"]
    assert body["endpoint"] == ["https://etcd.k2s-dns.svc.cluster.local:2379"]
    assert body["tls"] == list(TLS)
    assert patched.count(BEGIN_MARKER) == 1
    # Every byte of the original is where it was, the added block right before the serving one.
    assert patched.replace(region(patched), "") == original
    assert patched.index(corefile.END_MARKER) < patched.index(server_block_of(patched).keys[0].text + " {")


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_patch_is_idempotent_and_unpatch_restores_bytes(path, settings):
    original = read(path)
    once = patch(original, ".:53", settings)
    assert patch(once, ".:53", settings) == once
    assert unpatch(once) == original


@pytest.mark.parametrize(
    ("name", "owned"),
    [
        ("svc.cluster.local.", True),
        ("web.default.svc.cluster.local.", True),
        ("www.example.com.default.svc.cluster.local.", True),
        ("10-0-0-1.default.pod.cluster.local.", True),
        ("pod.cluster.local.", True),
        ("cluster.local.", True),
        ("ns.dns.cluster.local.", True),
        ("dns-version.cluster.local.", True),
        ("WEB.Default.SVC.Cluster.Local.", True),  # DNS 0x20 mixed case
        ("web.tenant.cluster.local.", False),
        ("www.example.com.cluster.local.", False),
        ("svc.tenant.cluster.local.", False),
        ("k2s.cluster.local.", False),
        ("dns.cluster.local.", False),
        ("x.ns.dns.cluster.local.", False),
        ("svccluster.local.", False),
        # A Service FQDN without its final dot, expanded with the last search domain (musl asks it first).
        ("db.prod.svc.cluster.local.cluster.local.", True),
        ("cluster.local.cluster.local.", True),
        ("local.cluster.local.", False),
    ],
)
def test_the_view_leaves_every_name_the_kubernetes_plugin_answers_to_it(name, owned, settings):
    patched = patch(read(HERE / "corefiles/kubeadm-1.34.Corefile"), None, settings)
    assert bool(view_regex(managed(patched)).fullmatch(name)) is owned


def test_the_kubernetes_plugin_gets_no_fall_through(settings):
    for name in ("kubeadm-1.34", "minimal-one-line-kubernetes", "fallthrough-all"):
        original = read(HERE / f"corefiles/{name}.Corefile")
        assert kubernetes_fallthrough(patch(original, None, settings)) == kubernetes_fallthrough(original)


def test_the_block_repeats_where_the_serving_block_listens_and_reports(settings):
    original = ".:53 {\n    bind 10.96.0.10 eth0\n    log\n    kubernetes cluster.local\n    prometheus :9153\n}\n"
    block = managed(patch(original, None, settings))
    assert [(d.name, d.args) for d in block.directives if d.name in corefile.COPIED] == [
        ("bind", ["10.96.0.10", "eth0"]),
        ("log", []),
        ("prometheus", [":9153"]),
    ]


def test_cache_in_the_zone_block_caches_answers_and_misses_for_a_second(settings):
    patched = patch(read(HERE / "corefiles/kubeadm-1.34.Corefile"), None, settings)
    cache = next(d for d in managed(patched).directives if d.name == "cache")
    assert cache.args == ["30"]
    assert [(c.name, c.args) for c in cache.children] == [("denial", ["9984", "1", "1"])]
    off = dataclasses.replace(settings, cache=False)
    assert "cache" not in [d.name for d in managed(patch(patched, None, off)).directives]


def test_zone_outside_the_kubernetes_zones_gets_a_view_that_takes_every_name():
    original = read(HERE / "corefiles/kind-custom-domain.Corefile")
    patched = patch(original, ".:53", settings_for("apps.example"), cluster_domain="k2s.local")
    block = managed(patched)
    assert block.label == "apps.example:53"
    view = next(d for d in block.directives if d.name == "view")
    assert view.children[0].args == ["true"]
    assert "tls " not in patched


def test_custom_cluster_domain_is_what_the_view_leaves_to_kubernetes():
    original = read(HERE / "corefiles/kind-custom-domain.Corefile")
    patched = patch(original, None, settings_for("k2s.local"), cluster_domain="k2s.local")
    regex = view_regex(managed(patched))
    assert regex.fullmatch("web.default.svc.k2s.local.") and not regex.fullmatch("web.default.svc.cluster.local.")


def test_subzone_of_the_cluster_domain_gets_a_block_of_its_own(settings):
    original = read(HERE / "corefiles/kubeadm-1.34.Corefile")
    patched = patch(original, ".:53", settings_for("apps.cluster.local"))
    assert managed(patched).label == "apps.cluster.local:53"
    assert unpatch(patched) == original


def test_zone_inside_svc_or_pod_is_refused():
    original = read(HERE / "corefiles/kubeadm-1.34.Corefile")
    for zone in ("svc.cluster.local", "ingress.svc.cluster.local", "pod.cluster.local"):
        with pytest.raises(CorefileError, match=re.escape(f"zone '{zone}' lies inside")):
            patch(original, None, settings_for(zone))


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
    assert unpatch(second) == original


def test_unpatch_keeps_other_peoples_later_edits(settings):
    original = read(HERE / "corefiles/kubeadm-1.34.Corefile")
    patched = patch(original, ".:53", settings)
    edited = patched.replace("cache 30 {\n       disable", "cache 60 {\n       disable")
    assert edited != patched
    assert unpatch(edited) == original.replace("cache 30 {", "cache 60 {")


def test_unpatch_of_an_unpatched_corefile_is_identity():
    original = read(HERE / "corefiles/k3s.Corefile")
    assert unpatch(original) == original


# What releases before the zone's own server block wrote: an etcd block next to the kubernetes plugin, its
# fall-through and a narrowed cache line. An upgrade (or uninstall) must take all of it out again.
FALLTHROUGH_PATCHED = sorted((HERE / "corefiles-fallthrough-patch").glob("*.Corefile"))


@pytest.mark.parametrize("path", FALLTHROUGH_PATCHED, ids=lambda p: p.stem)
def test_the_fall_through_patch_of_earlier_releases_is_removed_byte_for_byte(path, settings):
    old = read(path)
    original = read(HERE / f"corefiles/{path.name}")
    assert corefile.OWNED_ZONE in old or corefile.OWNED_LINE in old
    assert unpatch(old) == original
    assert patch(old, None, settings) == patch(original, None, settings)


REFUSED = [
    ("unbalanced", ".:53", "never closed"),
    ("no-root-server-block", ".:53", "no server block for '.:53'"),
    ("unterminated-quote", ".:53", "unterminated quoted string"),
    ("extra-closing-brace", ".:53", "unexpected '}'"),
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


def test_zone_specific_server_block_gets_the_view_block_before_it(settings):
    original = read(HERE / "corefiles/zone-specific-server-block.Corefile")
    patched = patch(original, None, settings)
    blocks = corefile.parse(patched)
    assert [b.label for b in blocks] == ["cluster.local:53", "cluster.local:53", ".:53"]
    assert blocks[0].open_brace == managed(patched).open_brace
    assert unpatch(patched) == original
    assert patch(patched, None, settings) == patched


def test_server_block_override_still_goes_before_a_block_with_the_same_key(settings):
    original = read(HERE / "corefiles/zone-specific-server-block.Corefile")
    patched = patch(original, ".:53", settings)
    assert [b.label for b in corefile.parse(patched)] == ["cluster.local:53", "cluster.local:53", ".:53"]
    # It repeats what the override's block says (prometheus, loadbalance), not the zone block's.
    assert "prometheus" in [d.name for d in managed(patched).directives]


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


def test_mixed_line_endings_are_kept_line_by_line(settings):
    original = "# lf\n.:53 {\r\n    errors\n    kubernetes cluster.local\r\n    cache 30\n}\r\n"
    patched = patch(original, None, settings)
    assert "# lf\n" + BEGIN_MARKER + "\r\ncluster.local:53 {\r\n" in patched
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


def test_kubernetes_in_a_snippet_is_no_obstacle(settings):
    original = read(HERE / "corefiles/import-snippet-with-kubernetes.Corefile")
    patched = patch(original, None, settings)
    assert managed(patched).label == "cluster.local:53"
    assert unpatch(patched) == original


def test_snippet_with_other_plugins_is_fine(settings):
    original = read(HERE / "corefiles/snippet-and-import.Corefile")
    patched = patch(original, None, settings)
    assert patched.count("etcd cluster.local {") == 1
    assert unpatch(patched) == original


def test_k3s_override_import_is_fine(settings):
    original = read(HERE / "corefiles/k3s.Corefile")
    assert unpatch(patch(original, None, settings)) == original


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
        "k2s-dns's server block for cluster.local would take over its names. To let k2s-dns replace it with its "
        "own (and put it back on uninstall), set coredns.patch.adoptExistingEtcdBlock=true; or remove it"
    )


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_k2s_sed_etcd_block_is_adopted_and_put_back(eol, settings):
    original = read(HERE / "corefiles-invalid/k2s-sed-etcd-block.Corefile").replace("\n", eol)
    patched = patch(original, None, settings, adopt_existing=True)
    assert "etcd" not in [d.name for d in server_block_of(patched).directives]
    etcd = [d for d in managed(patched).directives if d.name == "etcd"]
    assert {c.name: c.args for c in etcd[0].children}["endpoint"] == ["https://etcd.k2s-dns.svc.cluster.local:2379"]
    assert f"    {corefile.ADOPTED_PREFIX}        endpoint https://172.19.1.100:2379{eol}" in patched
    assert patch(patched, None, settings, adopt_existing=True) == patched
    assert unpatch(patched) == original
    assert "\n" not in patched.replace(eol, "")


def test_switch_does_not_adopt_an_etcd_block_for_another_set_of_zones(settings):
    text = ".:53 {\n    kubernetes cluster.local\n    etcd local {\n        path /skydns\n    }\n}\n"
    with pytest.raises(CorefileError) as err:
        patch(text, None, settings, adopt_existing=True)
    assert str(err.value).endswith(
        "coredns.patch.adoptExistingEtcdBlock only takes over an etcd plugin for exactly cluster.local: remove this "
        "one, or merge its zones by hand"
    )


def test_an_etcd_plugin_for_another_zone_stays_as_it_is(settings):
    original = read(HERE / "corefiles/foreign-etcd-other-zone.Corefile")
    patched = patch(original, None, settings)
    assert [d.args for d in server_block_of(patched).directives if d.name == "etcd"] == [["example.test"]]
    assert unpatch(patched) == original


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


def test_unpatch_finds_a_reindented_block(settings):
    original = read(HERE / "corefiles/kubeadm-1.34.Corefile")
    patched = patch(original, None, settings)
    start, end = patched.index(BEGIN_MARKER), patched.index(corefile.END_MARKER)
    reindented = patched[:start] + patched[start:end].replace("\n    ", "\n\t\t") + patched[end:]
    assert reindented != patched
    assert unpatch(reindented) == original
