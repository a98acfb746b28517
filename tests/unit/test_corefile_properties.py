"""Property-based tests of the Corefile patcher on generated Corefiles.

The generator writes what real Corefiles contain, in every layout CoreDNS accepts:
comments anywhere (also right after a token, after braces and after the kubernetes
plugin), blank and whitespace-only lines, tabs, LF, CRLF or both, any block order,
zone-specific server blocks in every key spelling, other ports and transports,
snippets (also one with kubernetes, imported only where it does not matter),
k3s-style file imports and cache stanzas (kubeadm's, which keeps the cluster domain
uncached, and others). Every one of them must be patchable and restorable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k2s_dns import corefile
from k2s_dns.corefile import EtcdSettings, nodelocal_patch, nodelocal_unpatch, patch, unpatch

# Few examples each so that the unit tier stays fast; K2S_DNS_EXAMPLES=5000 for a thorough run.
EXAMPLES = int(os.environ.get("K2S_DNS_EXAMPLES", "40"))
# No example database: nothing written into the work tree, and CI runs stay independent of earlier ones.
# The default run is derandomized (the same examples every time), so CI is reproducible; a thorough run with
# K2S_DNS_EXAMPLES explores new ones.
FAST = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize="K2S_DNS_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow],
)

ZONES = ("cluster.local", "apps.cluster.local", "apps.k2s.local")
ENDPOINTS = ("https://etcd.k2s-dns.svc.cluster.local:2379",)
TLS = ("/etc/k2s-dns/etcd-client/tls.crt", "/etc/k2s-dns/etcd-client/tls.key", "/etc/k2s-dns/etcd-ca/ca.crt")

# No letters of "k2s-dns", so a generated comment never looks like a k2s-dns marker.
comment_text = st.text(alphabet=list("abcXYZ {}\"'#\t:;.,()/é€"), max_size=12)
# A `#` glued to a word hides only the rest of that word from CoreDNS, so such a comment has no spaces.
glued_comment_text = st.text(alphabet=list("abcXYZ{}\"'#:;.,()/é€"), max_size=12)
indents = st.sampled_from(["", " ", "    ", "\t", "\t\t", "  \t", "        "])
seps = st.sampled_from([" ", " ", "  ", "\t"])


@st.composite
def trailing(draw: st.DrawFn) -> str:
    """Nothing, or a comment after the last token of a line (sometimes with no space before it)."""
    if not draw(st.booleans()):
        return draw(st.sampled_from(["", "", "  ", "\t"]))
    if draw(st.integers(0, 3)) == 0:
        return "#" + draw(glued_comment_text) + draw(st.sampled_from(["", " ", "\t"]))
    return draw(st.sampled_from([" ", "   ", "\t"])) + "#" + draw(comment_text)


@st.composite
def filler(draw: st.DrawFn) -> list[str]:
    """Lines between directives: blank, whitespace only, or whole-line comments."""
    lines = draw(st.lists(st.sampled_from(["blank", "space", "comment"]), max_size=2))
    out = []
    for kind in lines:
        if kind == "blank":
            out.append("")
        elif kind == "space":
            out.append(draw(st.sampled_from([" ", "\t", "    "])))
        else:
            out.append(draw(indents) + "#" + draw(comment_text))
    return out


def words(draw: st.DrawFn, tokens: list[str]) -> str:
    return "".join((draw(seps) if i else "") + t for i, t in enumerate(tokens))


@dataclass
class Plugin:
    tokens: list[str]
    children: list[list[str]] | None = None


SIMPLE = [
    Plugin(["errors"]),
    Plugin(["log"]),
    Plugin(["ready"]),
    Plugin(["loop"]),
    Plugin(["reload"]),
    Plugin(["loadbalance"]),
    Plugin(["cache", "30"]),
    # kubeadm's: the cluster domain uncached (patch() narrows success caching to what kubernetes answers).
    Plugin(["cache", "30"], [["disable", "success", "cluster.local"], ["disable", "denial", "cluster.local"]]),
    Plugin(["cache"], [["success", "9984", "30"], ["disable", "success", "Cluster.Local.", "example.org"]]),
    Plugin(["cache", "30"], [["disable", "success", "example.org"], ["disable", "success", "cluster.local"]]),
    Plugin(["cache", "30"], [["disable", "denial", "cluster.local"]]),  # success cached already
    Plugin(["cache", "30"], [["disable", "success", "cluster.local"], ["disable", "success", "example.org"]]),
    Plugin(["prometheus", ":9153"]),
    Plugin(["whoami"]),
    Plugin(["health"], [["lameduck", "5s"]]),
    Plugin(["forward", ".", "/etc/resolv.conf"], [["max_concurrent", "1000"]]),
    Plugin(["template", "IN", "A", "home.arpa"], [["answer", '"{{ .Name }} 60 IN A 10.0.0.1"']]),
    Plugin(["hosts", "/etc/coredns/NodeHosts"], [["ttl", "60"], ["fallthrough"]]),
]


@st.composite
def kubernetes_plugin(draw: st.DrawFn, zones: list[list[str]]) -> Plugin:
    args = draw(st.sampled_from(zones))
    if draw(st.booleans()):
        return Plugin(["kubernetes", *args])  # one line, no block
    children = []
    if draw(st.booleans()):
        children.append(["pods", "insecure"])
    fall = draw(
        st.sampled_from(
            [None, ["fallthrough"], ["fallthrough", "in-addr.arpa", "ip6.arpa"], ["fallthrough", "Cluster.Local."]]
        )
    )
    if fall:
        children.append(fall)
    if draw(st.booleans()):
        children.append(["ttl", "30"])
    return Plugin(["kubernetes", *args], children)


@st.composite
def render_plugin(draw: st.DrawFn, plugin: Plugin, indent: str) -> list[str]:
    if plugin.children is None:
        return [indent + words(draw, plugin.tokens) + draw(trailing())]
    lines = [indent + words(draw, plugin.tokens) + draw(seps) + "{" + draw(trailing())]
    inner = indent + draw(st.sampled_from(["   ", "    ", "\t"]))
    for child in plugin.children:
        lines += draw(filler())
        lines.append(inner + words(draw, child) + draw(trailing()))
    lines.append(indent + "}" + draw(trailing()))
    return lines


@st.composite
def server_block(
    draw: st.DrawFn, keys: list[str], plugins: list[Plugin], imports: list[str], after: list[str]
) -> list[str]:
    """Lines of a server block: plugins and snippet imports in any order, file imports (`after`) last."""
    indent = draw(indents) or "    "
    body: list[Plugin | str] = draw(st.permutations([*plugins, *imports]))
    lines = [draw(indents)[:1] + keys[0]]
    for key in keys[1:]:
        if lines[-1].endswith(","):
            lines.append(draw(indents) + key)  # a key list continued on the next line
        else:
            lines[-1] += draw(seps) + key
    lines[-1] += draw(seps) + "{" + draw(trailing())
    for item in [*body, *after]:
        lines += draw(filler())
        if isinstance(item, Plugin):
            lines += draw(render_plugin(item, indent))
        else:
            lines.append(indent + "import" + draw(seps) + item + draw(trailing()))
    lines += draw(filler())
    lines.append(draw(st.sampled_from(["", "", "    "])) + "}" + draw(trailing()))
    return lines


ROOT_KEYS = [[".:53"], ["."], [":53"], ["dns://.:53"], ["dns://."]]
ZONE_KEYS = [
    ["cluster.local:53"],
    ["cluster.local"],
    ["dns://cluster.local:53"],
    ["CLUSTER.LOCAL:53"],
    ["cluster.local.:53"],
    ["cluster.local:53", "in-addr.arpa:53"],
    ["cluster.local:53,", "in-addr.arpa:53"],
    ["in-addr.arpa,", "cluster.local"],
]
OTHER_BLOCKS = {
    "other-port": (["cluster.local:5353"], [Plugin(["kubernetes", "cluster.local"])]),
    "tls": (["tls://.:853"], [Plugin(["tls", "/etc/coredns/tls.crt", "/etc/coredns/tls.key"]), Plugin(["whoami"])]),
    "other-zone": (["example.org:53"], [Plugin(["file", "/etc/coredns/example.db"]), Plugin(["log"])]),
}


@dataclass
class Generated:
    text: str
    zone: str
    foreign_etcd: bool


@st.composite
def corefiles(draw: st.DrawFn, foreign_etcd: bool = False) -> Generated:
    zone = draw(st.sampled_from(ZONES))
    has_zone_block = draw(st.booleans())
    serving_is_zone_block = has_zone_block and corefile._within(zone, "cluster.local")
    snippets = draw(st.sets(st.sampled_from(["common", "k8s"])))
    blocks: list[list[str]] = []

    def plugins(k8s_zones: list[list[str]] | None) -> tuple[list[Plugin], list[str], list[str]]:
        chosen = draw(st.lists(st.sampled_from(SIMPLE), max_size=5, unique_by=lambda p: p.tokens[0]))
        after: list[str] = []
        if k8s_zones is not None:
            chosen.append(draw(kubernetes_plugin(k8s_zones)))
            if draw(st.integers(0, 3)) == 0:
                after.append("/etc/coredns/custom/*.override")  # k3s: file imports below kubernetes
        imports = ["common"] if "common" in snippets and draw(st.booleans()) else []
        return chosen, imports, after

    def with_etcd(chosen: list[Plugin], serving: bool) -> list[Plugin]:
        if foreign_etcd and serving:
            etcd = Plugin(["etcd", zone], [["path", "/skydns"], ["endpoint", "https://172.19.1.100:2379"]])
            return [*chosen, etcd]
        return chosen

    root_k8s = (
        None
        if draw(st.integers(0, 4)) == 0
        else [[], ["cluster.local", "in-addr.arpa", "ip6.arpa"], ["CLUSTER.LOCAL."]]
    )
    chosen, imports, after = plugins(root_k8s)
    if not chosen and not imports:
        chosen = [Plugin(["whoami"])]
    chosen = with_etcd(chosen, not serving_is_zone_block)
    blocks.append(draw(server_block(draw(st.sampled_from(ROOT_KEYS)), chosen, imports, after)))
    if has_zone_block:
        chosen, imports, after = plugins([["cluster.local"], ["cluster.local", "in-addr.arpa"], []])
        chosen = with_etcd(chosen, serving_is_zone_block)
        blocks.append(draw(server_block(draw(st.sampled_from(ZONE_KEYS)), chosen, imports, after)))
    for name in draw(st.sets(st.sampled_from(sorted(OTHER_BLOCKS)))):
        keys, chosen = OTHER_BLOCKS[name]
        # A snippet holding kubernetes is fine where the zone is not served.
        imports = ["k8s"] if name == "tls" and "k8s" in snippets else []
        blocks.append(draw(server_block(keys, chosen, imports, [])))

    lines = draw(filler())
    snippet_bodies = {"common": [Plugin(["errors"]), Plugin(["log"])], "k8s": [Plugin(["kubernetes", "cluster.local"])]}
    for name in sorted(snippets):
        lines += draw(server_block([f"({name})"], snippet_bodies[name], [], []))
        lines += draw(filler())
    for block in draw(st.permutations(blocks)):
        lines += block
        lines += draw(filler())
    if draw(st.integers(0, 3)) == 0:
        lines.append("import /etc/coredns/custom/*.server")

    style = draw(st.sampled_from(["lf", "crlf", "mixed"]))
    eols = {"lf": ["\n"], "crlf": ["\r\n"], "mixed": ["\n", "\r\n"]}[style]
    text = "".join(line + draw(st.sampled_from(eols)) for line in lines)
    if draw(st.booleans()):
        text = text.rstrip("\r\n")  # a ConfigMap written with `|-` has no final line ending
    return Generated(text, zone, foreign_etcd)


def etcd_settings(zone: str, cache: bool = True) -> EtcdSettings:
    return EtcdSettings(zone, "/skydns", ENDPOINTS, TLS, cache=cache)


def check_patched(original: str, patched: str, zone: str) -> None:
    """One added server block for the zone, placed where CoreDNS accepts it; every other block as it was."""
    managed = corefile.managed_block(patched)
    assert managed is not None
    blocks = [b if b.open_brace != managed.open_brace else managed for b in corefile.parse(patched)]
    assert managed.label == f"{zone}:53"
    etcd = [d for d in managed.directives if d.name == "etcd"]
    assert len(etcd) == 1
    assert etcd[0].args == [zone]
    assert managed.directives[0].name == "view"
    # No other active etcd plugin answers names of the zone (an adopted one is commented out).
    for block in blocks:
        if block is not managed:
            for d in block.directives:
                if d.name == "etcd":
                    zones = [z for z in d.args if not z.startswith("{")] or corefile._block_zones(block)
                    assert not any(corefile._within(zone, z) or corefile._within(z, zone) for z in zones)
    # Before every block keyed on exactly the zone (a view block must come first), and before the block that
    # served the zone.
    served = corefile.find_serving_block(corefile.parse(original), zone)
    for block in blocks:
        same_key = any(corefile._fqdn(zone) in a.zones for a in corefile.addresses(block) if a.port == "53")
        if block is not managed and (
            same_key
            or original[served.open_brace : served.close_brace] == patched[block.open_brace : block.close_brace]
        ):
            assert managed.open_brace < block.open_brace
    # Every other server block is untouched, byte for byte, in its order.
    before = [(b.label, original[b.open_brace : b.close_brace]) for b in corefile.parse(original)]
    after = [(b.label, patched[b.open_brace : b.close_brace]) for b in blocks if b is not managed]
    if not any(d.name == "etcd" for b in corefile.parse(original) for d in b.directives):
        assert before == after
    else:
        assert [label for label, _ in before] == [label for label, _ in after]


@FAST
@given(corefiles(), st.sampled_from(ZONES), st.booleans())
def test_patch_round_trips_and_is_idempotent(generated: Generated, other: str, cache: bool):
    original, zone = generated.text, generated.zone
    patched = patch(original, None, etcd_settings(zone, cache))
    assert unpatch(patched) == original
    assert patch(patched, None, etcd_settings(zone, cache)) == patched
    check_patched(original, patched, zone)
    # A new zone (helm upgrade with other values) replaces everything the old one added.
    assert patch(patched, None, etcd_settings(other)) == patch(original, None, etcd_settings(other))
    # So does the cache switch, either way.
    flipped = patch(patched, None, etcd_settings(zone, not cache))
    assert flipped == patch(original, None, etcd_settings(zone, not cache))


@FAST
@given(corefiles(foreign_etcd=True))
def test_adopted_etcd_block_round_trips(generated: Generated):
    original, zone = generated.text, generated.zone
    patched = patch(original, None, etcd_settings(zone), adopt_existing=True)
    assert unpatch(patched) == original
    assert patch(patched, None, etcd_settings(zone), adopt_existing=True) == patched
    check_patched(original, patched, zone)


NODELOCAL_TEMPLATE = [
    "cluster.local:53 {",
    "    errors",
    "    cache {",
    "            success 9984 30",
    "            denial 9984 5",
    "    }",
    "    reload",
    "    loop",
    "    bind 169.254.20.10 10.96.0.10",
    "    forward . __PILLAR__CLUSTER__DNS__ {",
    "            force_tcp",
    "    }",
    "    prometheus :9253",
    "    health 169.254.20.10:8080",
    "    }",
    "in-addr.arpa:53 {",
    "    errors",
    "    cache 30",
    "    forward . __PILLAR__CLUSTER__DNS__ {",
    "            force_tcp",
    "    }",
    "    }",
    ".:53 {",
    "    errors",
    "    cache 30",
    "    forward . __PILLAR__UPSTREAM__SERVERS__",
    "    }",
]


@FAST
@given(
    st.lists(st.tuples(st.sampled_from(["", "#" + "x" * 3, "   "]), trailing()), min_size=len(NODELOCAL_TEMPLATE)),
    st.sampled_from(["\n", "\r\n"]),
    st.sampled_from(["apps.k2s.local", "k2s.local", "example.test", "apps.cluster.local"]),
)
def test_nodelocal_round_trips(decorations: list[tuple[str, str]], eol: str, zone: str):
    lines = []
    for line, (extra_line, comment) in zip(NODELOCAL_TEMPLATE, decorations, strict=False):
        if extra_line:
            lines.append(extra_line)
        lines.append(line + comment)
    original = eol.join(lines) + eol
    patched = nodelocal_patch(original, zone, "cluster.local")
    assert nodelocal_unpatch(patched) == original
    assert nodelocal_patch(patched, zone, "cluster.local") == patched
    served = corefile.find_serving_block(corefile.parse(patched), zone)
    expected = "cluster.local:53" if zone.endswith("cluster.local") else f"{zone}:53"
    assert served.label == expected
