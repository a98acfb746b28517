"""Pure Corefile patcher: add (or remove) k2s-dns's server block for the zone (etcd behind a view).

Works on the text itself, so everything it does not own (comments, layout,
line endings, other server blocks, imports) is kept byte for byte. Anything it
cannot parse with certainty, or cannot patch so that CoreDNS really uses the
result, raises :class:`CorefileError` and nothing is changed.

Everything patch() adds is marked, so unpatch() needs nothing but the text:

- the zone's server block sits between BEGIN/END marker lines (whole lines of their own), right
  before the server block that served the zone;
- an etcd block adopted from someone else is kept, commented out, inside a region of its own
  (ADOPTED_PREFIX lines), so unpatch() can put it back exactly.

Older releases edited the cluster's own server block instead (a kubernetes fall-through marked with
`# k2s-dns: ...` comments, a rewritten cache line kept as a REPLACED_PREFIX comment); unpatch() still
removes those, so an upgrade replaces them with the new block.

The same goes for the NodeLocal DNSCache Corefile (nodelocal_patch/unpatch).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

BEGIN_MARKER = "# BEGIN k2s-dns etcd block (managed by the k2s-dns chart; do not edit)"
# Matching by prefix lets a later release reword the parenthetical and still remove older blocks.
BEGIN_PREFIX = "# BEGIN k2s-dns etcd block"
END_MARKER = "# END k2s-dns etcd block"
ADOPTED_PREFIX = "# k2s-dns adopted: "
OWNED_LINE = "# k2s-dns: added"
OWNED_ZONE = "# k2s-dns: +"
OWNED_BLOCK = "{ # k2s-dns: +block"
OWNED_SPLIT = "# k2s-dns: +split"
REPLACED_PREFIX = "# k2s-dns: replaced: "
NODELOCAL_BEGIN_MARKER = "# BEGIN k2s-dns node-local-dns forward (managed by the k2s-dns chart; do not edit)"
NODELOCAL_BEGIN_PREFIX = "# BEGIN k2s-dns node-local-dns forward"
NODELOCAL_END_MARKER = "# END k2s-dns node-local-dns forward"

ADOPT_SWITCH = "coredns.patch.adoptExistingEtcdBlock"
SERVER_SWITCH = "coredns.serverBlock"
DNS_PORT = "53"

# Transports CoreDNS recognises in a server block key (plugin/pkg/parse/transport.go), with the default
# ports it gives them (core/dnsserver/register.go); a unix:// listener has no port.
_TRANSPORT_PORTS = {"tls": "853", "dns": DNS_PORT, "quic": "853", "grpc": "443", "https3": "443", "https": "443"}
_TRANSPORTS = (*_TRANSPORT_PORTS, "unix")
_ZONE_RE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")
_BRACES = ("{", "}")
_ZONE_LIST_RE = re.compile(r"[^\s#,]+(?:,[^\s#,]+)*")


class CorefileError(ValueError):
    """The Corefile cannot be patched safely; the message names the problem."""


@dataclass(frozen=True)
class EtcdSettings:
    """What the inserted `etcd` plugin block says."""

    zone: str
    path: str
    endpoints: tuple[str, ...]
    tls: tuple[str, str, str] | None = None  # cert, key, ca
    fallthrough: bool = False
    cache: bool = True  # a cache plugin in the zone's server block

    def lines(self) -> list[str]:
        body = [f"path {self.path}", "endpoint " + " ".join(self.endpoints)]
        if self.tls:
            body.append("tls " + " ".join(self.tls))
        if self.fallthrough:
            body.append("fallthrough")
        return [f"etcd {self.zone} {{", *(f"    {line}" for line in body), "}"]


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # offset in the Corefile
    line: int  # 1-based

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    @property
    def last_line(self) -> int:
        """The line the token ends on (a quoted string may span lines)."""
        return self.line + self.text.count("\n")


@dataclass
class Directive:
    """One line inside a server block: a plugin name, its arguments and optional block."""

    tokens: list[Token]
    line_start: int  # offset of the start of the directive's first line
    end: int  # offset just past the directive (its closing brace or last token)
    block: tuple[int, int] | None = None  # offsets of "{" and "}"
    children: list[Directive] | None = None

    @property
    def name(self) -> str:
        return self.tokens[0].text

    @property
    def args(self) -> list[str]:
        return [t.text for t in self.tokens[1:]]

    @property
    def line(self) -> int:
        return self.tokens[0].line


@dataclass
class ServerBlock:
    keys: list[Token]
    open_brace: int
    close_brace: int
    directives: list[Directive]

    @property
    def label(self) -> str:
        return " ".join(k.text for k in self.keys)

    @property
    def line(self) -> int:
        return self.keys[0].line


@dataclass
class Snippet:
    """`(name) { ... }`: tokens CoreDNS pastes wherever `import name` appears after it."""

    name: str
    key: Token
    open_brace: int
    close_brace: int
    directives: list[Directive]

    @property
    def line(self) -> int:
        return self.key.line


@dataclass
class Corefile:
    blocks: list[ServerBlock]
    snippets: dict[str, Snippet]
    imports: list[list[Token]]  # top-level `import` lines: the directive and its arguments


@dataclass(frozen=True)
class Address:
    """A server block key as CoreDNS reads it: `dns://example.org:53` -> ("dns", ("example.org.",), "53")."""

    transport: str
    zones: tuple[str, ...]
    port: str


def _is_space(ch: str) -> bool:
    """Whitespace as CoreDNS's lexer sees it (Go's unicode.IsSpace; Python adds the \\x1c-\\x1f separators)."""
    return ch.isspace() and ch not in "\x1c\x1d\x1e\x1f"


def tokenize(text: str) -> list[Token]:
    """CoreDNS's (Caddy v1) lexer: words separated by whitespace, quoted strings, comments.

    Faithful where it matters for where things are: braces are only braces as words
    of their own (`foo{` is one word), a quote opens a string only at the start of a
    word, `#` at the start of a word comments out the rest of the line, but `#` inside
    a word only hides the rest of that word (`30#x y` is `30` and `y` to CoreDNS).
    """
    tokens: list[Token] = []
    i, line, n = (1 if text.startswith("\ufeff") else 0), 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif _is_space(ch):
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch == '"':
            start, start_line = i, line
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                if i < n and text[i] == "\n":
                    line += 1
                i += 1
            if i >= n:
                raise CorefileError(f"line {start_line}: unterminated quoted string")
            i += 1
            tokens.append(Token(text[start:i], start, start_line))
        else:
            start = i
            while i < n and not _is_space(text[i]) and text[i] != "#":
                i += 1
            tokens.append(Token(text[start:i], start, line))
            while i < n and not _is_space(text[i]):
                i += 1  # the rest of a word after a `#` in it
    return tokens


def _tokens_in(text: str, start: int, end: int) -> list[Token]:
    """The tokens that start between two offsets (lexed in context: a `#` there may be inside a word)."""
    return [t for t in tokenize(text) if start <= t.start < end]


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def _after_line(text: str, offset: int) -> int:
    """Offset of the start of the line after the one holding offset (len(text) on the last line)."""
    newline = text.find("\n", offset)
    return len(text) if newline == -1 else newline + 1


def _eol_before(text: str, offset: int) -> str:
    """The line ending that ends just before offset: inserted lines copy it, so mixed files stay as they are."""
    if text.endswith("\r\n", 0, offset):
        return "\r\n"
    return "\n" if text.endswith("\n", 0, offset) else ""


def _lines(text: str) -> list[tuple[str, str]]:
    """(content, line ending) pairs; only LF ends a line, as for CoreDNS ("\\r" is whitespace to it)."""
    parts = text.split("\n")
    out = [(raw[:-1], "\r\n") if raw.endswith("\r") else (raw, "\n") for raw in parts[:-1]]
    if parts[-1]:
        out.append((parts[-1], ""))  # the text after the last LF has no line ending
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    def _peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _same_line_run(self) -> list[Token]:
        """Tokens up to the end of the current line (stopping before a brace)."""
        run: list[Token] = []
        while (tok := self._peek()) and (not run or tok.line == run[-1].last_line) and tok.text not in _BRACES:
            run.append(tok)
            self.pos += 1
        return run

    def parse(self) -> Corefile:
        blocks: list[ServerBlock] = []
        snippets: dict[str, Snippet] = {}
        imports: list[list[Token]] = []
        while (tok := self._peek()) is not None:
            if tok.text in _BRACES:
                raise CorefileError(f"line {tok.line}: unexpected '{tok.text}' outside a server block")
            keys = self._same_line_run()
            # Keys may continue on the next line after a trailing comma.
            while keys[-1].text.endswith(",") and (nxt := self._peek()) and nxt.text not in _BRACES:
                keys += self._same_line_run()
            if keys[0].text == "import":
                imports.append(keys)
                continue
            brace = self._peek()
            if brace is None or brace.text != "{":
                raise CorefileError(f"line {keys[0].line}: server block '{keys[0].text}' has no '{{'")
            self.pos += 1
            directives, close = self._directives(brace)
            name = keys[0].text
            if len(keys) == 1 and name.startswith("(") and name.endswith(")"):
                # A snippet, not a server block: CoreDNS only pastes its tokens where it is imported.
                if name[1:-1] in snippets:
                    raise CorefileError(f"line {keys[0].line}: snippet {name} is defined twice")
                snippets[name[1:-1]] = Snippet(name[1:-1], keys[0], brace.start, close.start, directives)
                continue
            previous = self.tokens[self.pos - 2]
            if previous.last_line == close.line and previous is not brace:
                # CoreDNS refuses this too ("Unexpected '}'"); we rely on it when inserting whole lines.
                raise CorefileError(
                    f"line {close.line}: the '}}' closing server block '{name}' must start its own line"
                )
            blocks.append(ServerBlock(keys, brace.start, close.start, directives))
        return Corefile(blocks, snippets, imports)

    def _directives(self, opening: Token) -> tuple[list[Directive], Token]:
        directives = []
        while True:
            tok = self._peek()
            if tok is None:
                raise CorefileError(f"line {opening.line}: '{{' is never closed")
            if tok.text == "}":
                self.pos += 1
                return directives, tok
            if tok.text == "{":
                raise CorefileError(f"line {tok.line}: '{{' without a directive before it")
            run = self._same_line_run()
            directive = Directive(run, _line_start(self.text, run[0].start), run[-1].end)
            nxt = self._peek()
            if nxt is not None and nxt.text == "{" and nxt.line == run[-1].last_line:
                self.pos += 1
                children, close = self._directives(nxt)
                directive.block = (nxt.start, close.start)
                directive.children = children
                directive.end = close.start + 1
            directives.append(directive)


def parse_corefile(text: str) -> Corefile:
    """Parse a Corefile into server blocks, snippets and top-level imports; raises CorefileError when it cannot."""
    return _Parser(text).parse()


def parse(text: str) -> list[ServerBlock]:
    """Parse a Corefile into its server blocks (snippets are not server blocks); raises CorefileError."""
    return parse_corefile(text).blocks


def _fqdn(zone: str) -> str:
    zone = zone.lower()
    return zone if zone.endswith(".") else zone + "."


def within(name: str, zone: str) -> bool:
    """True when name is zone or below it (case-insensitive, trailing dots optional)."""
    return _within(name, zone)


def _within(name: str, zone: str) -> bool:
    name, zone = _fqdn(name), _fqdn(zone)
    return zone == "." or name == zone or name.endswith("." + zone)


def _labels(zone: str) -> int:
    return 0 if zone == "." else zone.rstrip(".").count(".") + 1


def _reverse_zones(host: str) -> tuple[str, ...]:
    """The in-addr.arpa/ip6.arpa zones CoreDNS makes of a CIDR key such as `10.0.0.0/24`."""
    if "/" not in host:
        return ()
    try:
        net = ipaddress.ip_network(host, strict=False)
    except ValueError:
        return ()
    step, total = (8, 4) if net.version == 4 else (4, 32)
    boundary = -(-net.prefixlen // step) * step  # CoreDNS splits at the next octet (nibble) boundary
    keep = boundary // step
    zones = []
    for sub in net.subnets(new_prefix=boundary):
        labels = sub.network_address.reverse_pointer.split(".")
        zones.append(".".join(labels[total - keep :]) + ".")
    return tuple(zones)


def parse_key(key: str) -> Address | None:
    """How CoreDNS reads one server block key (None for an empty key, e.g. a lone comma)."""
    key = key.rstrip(",")
    if not key:
        return None
    transport = "dns"
    for name in _TRANSPORTS:
        # Case-sensitive like CoreDNS: "DNS://x" is no DNS transport to it, and so no candidate here.
        if key.startswith(name + "://"):
            transport, key = name, key[len(name) + 3 :]
            break
    host, port = key, ""
    colon = key.rfind(":")
    if colon != -1 and key[colon + 1 :].isdigit():
        host, port = key[:colon], str(int(key[colon + 1 :]))
    port = port or _TRANSPORT_PORTS.get(transport, "")
    return Address(transport, _reverse_zones(host) or (_fqdn(host),), port)


def addresses(block: ServerBlock) -> list[Address]:
    return [a for k in block.keys if (a := parse_key(k.text)) is not None]


def _block_zones(block: ServerBlock) -> list[str]:
    return [z for a in addresses(block) for z in a.zones]


def _serves(block: ServerBlock, zone: str, port: str | None = DNS_PORT, transport: str | None = "dns") -> str | None:
    """The most specific key zone of block (on that port and transport, None: any) that holds zone, or None."""
    held = [
        z
        for a in addresses(block)
        if (transport is None or a.transport == transport) and (port is None or a.port == port)
        for z in a.zones
        if _within(zone, z)
    ]
    return max(held, key=_labels) if held else None


def find_server_block(blocks: list[ServerBlock], server: str) -> ServerBlock:
    """The server block with the key `server` (any spelling of the same address), e.g. `.:53`."""
    target = parse_key(server)
    matches = [b for b in blocks if target is not None and target in addresses(b)]
    if not matches:
        found = ", ".join(b.label for b in blocks) or "none"
        raise CorefileError(f"no server block for '{server}' (server blocks found: {found})")
    if len(matches) > 1:
        raise CorefileError(f"more than one server block for '{server}'")
    return matches[0]


def _serving(blocks: list[ServerBlock], zone: str, port: str = DNS_PORT) -> tuple[ServerBlock, str] | None:
    """The server block CoreDNS sends names in zone to on port, and its key zone; None if none does.

    CoreDNS picks, per query, the server block whose key zone is the longest suffix
    of the name; for every name in zone that is the most specific key zone holding zone
    (a block for a sub-zone only takes that sub-zone's names).
    """
    candidates = [(z, b) for b in blocks if (z := _serves(b, zone, port)) is not None]
    if not candidates:
        return None
    best = max(_labels(z) for z, _ in candidates)
    winners = [(z, b) for z, b in candidates if _labels(z) == best]
    if len(winners) > 1:
        lines = ", ".join(str(b.line) for _, b in winners)
        raise CorefileError(
            f"more than one server block serves '{zone}' on port {port} (lines {lines}), e.g. with different "
            "bind addresses or views; k2s-dns patches exactly one: merge them, or leave only one for the zone"
        )
    return winners[0][1], winners[0][0]


def find_serving_block(blocks: list[ServerBlock], zone: str, port: str = DNS_PORT) -> ServerBlock:
    """The server block that answers names in zone on port, as CoreDNS routes queries."""
    found = _serving(blocks, zone, port)
    if found is None:
        keys = ", ".join(b.label for b in blocks) or "none"
        raise CorefileError(
            f"no server block serves '{zone}' on port {port} (server blocks found: {keys}); add one "
            f"(e.g. '.:{port}') or set {SERVER_SWITCH}"
        )
    return found[0]


def is_patched(text: str) -> bool:
    return BEGIN_PREFIX in text or "# k2s-dns: " in text


def _indent_of(text: str, directive: Directive) -> str:
    line = text[directive.line_start : directive.tokens[0].start]
    return line if line.strip() == "" else "    "


def _check_zone(zone: str) -> None:
    if not _ZONE_RE.fullmatch(zone):
        raise CorefileError(f"'{zone}' is not a DNS zone name k2s-dns can write into a Corefile")


# An edit: replace text[start:end] with the string.
_Edit = tuple[int, int, str]


def _apply(text: str, edits: list[_Edit]) -> str:
    """Apply non-overlapping edits; insertions at one offset keep their order in the list."""
    order = sorted(range(len(edits)), key=lambda i: (edits[i][0], i))
    out, pos = [], 0
    for i in order:
        start, end, new = edits[i]
        out.append(text[pos:start])
        out.append(new)
        pos = max(pos, end)
    out.append(text[pos:])
    return "".join(out)


def _snippet_before(corefile: Corefile, name: str, offset: int) -> Snippet | None:
    """The snippet `import name` at offset refers to: CoreDNS only knows snippets defined before."""
    snippet = corefile.snippets.get(name)
    return snippet if snippet is not None and snippet.open_brace < offset else None


def _check_top_level_snippets(corefile: Corefile, zone: str, best: str) -> None:
    """A server block pasted in from a snippet at top level could serve the zone more specifically."""
    for tokens in corefile.imports:
        arg = tokens[1].text if len(tokens) > 1 else ""
        snippet = _snippet_before(corefile, arg, tokens[0].start)
        if snippet is None:
            continue  # a file: k2s-dns cannot read it (k3s's `import /etc/coredns/custom/*.server`)
        for d in snippet.directives:
            if d.block is None:
                continue
            for key in (d.name, *d.args):
                address = parse_key(key)
                if address is None or address.transport != "dns" or address.port != DNS_PORT:
                    continue
                if any(_within(zone, z) and _labels(z) >= _labels(best) for z in address.zones):
                    raise CorefileError(
                        f"line {tokens[0].line}: the server block '{key}' for '{zone}' comes from snippet "
                        f"({snippet.name}) (line {d.line}); k2s-dns patches only server blocks written out in "
                        "the Corefile: inline it"
                    )


def _foreign_etcd_error(block: ServerBlock, etcd: Directive, zones: list[str], zone: str) -> CorefileError:
    head = (
        f"line {etcd.line}: server block '{block.label}' already has an etcd plugin for {' '.join(zones)} not "
        f"managed by k2s-dns, and k2s-dns's server block for {zone} would take over its names."
    )
    if [_fqdn(z) for z in zones] == [_fqdn(zone)]:
        return CorefileError(
            f"{head} To let k2s-dns replace it with its own (and put it back on uninstall), set {ADOPT_SWITCH}=true; "
            "or remove it"
        )
    return CorefileError(
        f"{head} {ADOPT_SWITCH} only takes over an etcd plugin for exactly {zone}: remove this one, or merge its "
        "zones by hand"
    )


def _owned_names_regex(domains: list[str]) -> str:
    """A regular expression (Go RE2, case-insensitive) for the names the kubernetes plugin answers in domains.

    plugin/kubernetes (parse.go) looks up in the API only names under `svc.<domain>` and `pod.<domain>`;
    elsewhere in the domain it answers just the apex (SOA/NS), `ns.dns.<domain>` (the DNS Service's address)
    and `dns-version.<domain>` (TXT). Also names that end in the domain twice (`<x>.<domain>.<domain>`): the
    third search-list candidate of every Service FQDN written without its final dot, e.g.
    `db.prod.svc.cluster.local.cluster.local` for `db.prod.svc.cluster.local` (4 dots, ndots 5), which musl
    asks before the name itself and stops at if it gets SERVFAIL; kubeadm's block answers it NXDOMAIN.
    `[.]` instead of `\\.`: a backslash is an escape to CoreDNS's lexer."""
    alternatives = []
    for domain in domains:
        escaped = "[.]".join(domain.rstrip(".").split("."))
        alternatives.append(f"((.+[.])?(svc|pod)[.]|ns[.]dns[.]|dns-version[.]|(.+[.])?{escaped}[.])?{escaped}[.]")
    return "(?i)^(" + "|".join(alternatives) + ")$"


# Directives of the serving block the zone's block repeats (one line each, no block of their own): where it
# listens (bind), its metrics (prometheus: same address, shared), its query log and answer shuffling.
COPIED = ("bind", "prometheus", "log", "loadbalance")


def _zone_block_lines(settings: EtcdSettings, kube_domains: list[str], copied: list[str]) -> list[str]:
    """The server block k2s-dns adds: the zone's names, minus what the kubernetes plugin answers, from etcd.

    A server block of its own, keyed on the zone, rather than the etcd plugin next to the kubernetes plugin
    with a fall-through: CoreDNS sends a query to the server block with the most specific zone whose view
    accepts it, and to the next less specific one otherwise (core/dnsserver/server.go). So every name the
    kubernetes plugin answers (Service and Pod names, their NXDOMAINs, the apex) still goes to the
    cluster's own server block exactly as before, never near etcd, and the kubernetes plugin needs no
    fall-through: a search-list miss under `svc.`/`pod.` is answered from its memory, and an etcd outage
    cannot turn it into SERVFAIL. The view is there even where it excludes nothing (a zone outside the
    cluster domain): a block with a view may share its key with a block the Corefile already has."""
    expr = f"not (name() matches '{_owned_names_regex(kube_domains)}')" if kube_domains else "true"
    lines = [f"{settings.zone}:{DNS_PORT} {{", "    view k2s-dns {", f"        expr {expr}", "    }"]
    lines += [f"    {line}" for line in copied]
    lines.append("    errors")
    if settings.cache:
        # Answers for the record TTL (the records' own TTL caps the 30); NXDOMAIN for a second only, so a name
        # published right after a miss answers within a second, while a burst of search-list misses for the
        # same external name (`www.example.com.<domain>`) asks etcd once a second, not once a query.
        lines += ["    cache 30 {", "        denial 9984 1 1", "    }"]
    lines += [f"    {line}" for line in settings.lines()]
    lines.append("}")
    return lines


def _region(indent: str, eol: str, lines: list[str], adopted: list[tuple[str, str]]) -> str:
    out = [f"{indent}{BEGIN_MARKER}{eol}"]
    out += [f"{indent}{ADOPTED_PREFIX}{content}{line_eol}" for content, line_eol in adopted]
    out += [f"{indent}{line}{eol}" for line in lines]
    out.append(f"{indent}{END_MARKER}{eol}")
    return "".join(out)


def kubernetes_domains(block: ServerBlock, cluster_domain: str, zone: str) -> list[str]:
    """The kubernetes plugin's forward zones (and the cluster domain) that share names with zone."""
    found = [_fqdn(cluster_domain)]
    for d in block.directives:
        if d.name == "kubernetes":
            found += [_fqdn(a) for a in d.args if not a.startswith("{") and not _reverse_zones(a)]
    out: list[str] = []
    for z in found:
        if not _is_reverse(z) and z != "." and (_within(zone, z) or _within(z, zone)) and z not in out:
            out.append(z)
    return out


def patch(
    text: str,
    server: str | None,
    settings: EtcdSettings,
    *,
    adopt_existing: bool = False,
    cluster_domain: str = "cluster.local",
) -> str:
    """Return the Corefile with k2s-dns's server block for the zone in place.

    The block goes right before the server block that serves the zone today (server None: the one CoreDNS
    sends the zone's names to on port 53; otherwise the block with that key, an explicit override), repeats its
    COPIED lines, and leaves it and every other block untouched. See _zone_block_lines for why a block of its own.
    adopt_existing: comment out a foreign etcd plugin for exactly this zone in that block (kept in a
    managed region; unpatch puts it back).
    Idempotent: patching a patched Corefile replaces what k2s-dns added (also an older k2s-dns's
    fall-through and cache edits, which unpatch removes).
    """
    _check_zone(settings.zone)
    _check_zone(cluster_domain)
    text = unpatch(text)
    corefile = parse_corefile(text)
    zone = settings.zone
    if server:
        block = find_server_block(corefile.blocks, server)
        if _serves(block, zone, port=None, transport=None) is None:
            raise CorefileError(
                f"server block '{server}' (line {block.line}, set by {SERVER_SWITCH}) does not serve '{zone}': "
                f"CoreDNS never asks it for those names. Leave {SERVER_SWITCH} empty to let k2s-dns pick the "
                "server block that serves the zone"
            )
    else:
        block = find_serving_block(corefile.blocks, zone)
        _check_top_level_snippets(corefile, zone, _serves(block, zone) or ".")
    kube_domains = kubernetes_domains(block, cluster_domain, zone)
    for domain in kube_domains:
        for owned in (f"svc.{domain}", f"pod.{domain}"):
            if _within(zone, owned):
                raise CorefileError(
                    f"zone '{zone}' lies inside '{owned.rstrip('.')}', which the kubernetes plugin answers "
                    "(Service and Pod names): pick a zone outside it"
                )
    copied = [" ".join(t.text for t in d.tokens) for d in block.directives if d.name in COPIED and d.block is None]
    edits: list[_Edit] = []
    for etcd in [d for d in block.directives if d.name == "etcd"]:
        zones = [z for z in etcd.args if not z.startswith("{")] or _block_zones(block)
        if not any(_within(zone, z) or _within(z, zone) for z in zones):
            continue  # another zone's etcd: none of ours reaches it, and it none of ours
        if not adopt_existing or [_fqdn(z) for z in zones] != [_fqdn(zone)]:
            raise _foreign_etcd_error(block, etcd, zones, zone)
        start = _line_start(text, etcd.tokens[0].start)
        end = _after_line(text, etcd.end)
        if text[start : etcd.tokens[0].start].strip() or _tokens_in(text, etcd.end, end):
            raise CorefileError(
                f"line {etcd.line}: the etcd plugin to adopt shares a line with other directives; put it on lines "
                "of its own"
            )
        edits.append((start, end, _region(_indent_of(text, etcd), _eol_before(text, end), [], _lines(text[start:end]))))
    # Before the serving block, and before any block keyed on exactly the zone: CoreDNS accepts a block with a
    # view next to one without for the same zone only in that order (core/dnsserver/register.go).
    same_key = [b for b in corefile.blocks if any(_fqdn(zone) in a.zones for a in addresses(b) if a.port == DNS_PORT)]
    before = min([block, *same_key], key=lambda b: b.keys[0].start)
    insert_at = _line_start(text, before.keys[0].start)
    indent = text[insert_at : before.keys[0].start]
    if indent.strip():
        raise CorefileError(
            f"line {before.line}: server block '{before.label}' shares its first line with other tokens; "
            "start it on a line of its own"
        )
    eol = _eol_before(text, _after_line(text, before.keys[0].start)) or ("\r\n" if "\r\n" in text else "\n")
    edits.append((insert_at, insert_at, _region(indent, eol, _zone_block_lines(settings, kube_domains, copied), [])))
    patched = _apply(text, edits)
    parse(patched)  # what we write must parse again
    return patched


def managed_block(text: str) -> ServerBlock | None:
    """The server block between k2s-dns's markers (None when there is none)."""
    begin = text.find(BEGIN_MARKER)
    while begin != -1:
        end = text.find(END_MARKER, begin)
        if end == -1:
            return None
        for block in parse(text):
            if begin < block.keys[0].start < end:
                return block
        begin = text.find(BEGIN_MARKER, end)
    return None


def _is_reverse(zone: str) -> bool:
    return _within(zone, "in-addr.arpa.") or _within(zone, "ip6.arpa.")


def _remove_regions(lines: list[tuple[str, str]], begin: str, end: str, what: str) -> list[list[str]]:
    """Drop BEGIN..END regions (whole lines), putting adopted lines back in their place."""
    out: list[list[str]] = []
    i = 0
    while i < len(lines):
        content, eol = lines[i]
        if not content.strip().startswith(begin):
            out.append([content, eol])
            i += 1
            continue
        adopted = []
        j = i + 1
        while j < len(lines) and not lines[j][0].strip().startswith(end):
            at = lines[j][0].find(ADOPTED_PREFIX)
            if at != -1 and not lines[j][0][:at].strip():
                adopted.append([lines[j][0][at + len(ADOPTED_PREFIX) :], lines[j][1]])
            j += 1
        if j == len(lines):
            raise CorefileError(f"{what} starting on line {i + 1} has no end marker ('{end}'); not touching it")
        end_content, end_eol = lines[j]
        trailing = end_content[end_content.find(end) + len(end) :]
        out += adopted
        if trailing and out:
            # Written by k2s-dns 0.1, which inserted the block in the middle of a line: what followed the
            # insertion point (a comment, say) ended up after the END marker and belongs to the line before.
            out[-1][0] += trailing
            out[-1][1] = end_eol
        elif not end_eol and out:
            out[-1][1] = ""  # the region was added at the end of a text without a final line ending
        i = j + 1
    return out


def _drop_added_zones(content: str) -> str:
    while (at := content.find(OWNED_ZONE)) != -1:
        match = _ZONE_LIST_RE.match(content, at + len(OWNED_ZONE))
        zones = match.group(0).split(",") if match else []
        marker_end = match.end() if match else at + len(OWNED_ZONE)
        added = f" {' '.join(zones)} "
        if zones and content.endswith(added, 0, at):
            content = content[: at - len(added)] + content[marker_end:]
            continue
        # Edited since: drop the marker and, where they are still the last words before it, our zones.
        words = content[:at].rstrip(" ").split(" ")
        for zone in reversed(zones):
            if words and words[-1] == zone:
                words.pop()
        content = " ".join(words) + content[marker_end:]
    return content


def unpatch(text: str) -> str:
    """Remove only what patch() added: the marked block (restoring an adopted one), the marked fall-through
    and the rewritten cache line (restoring the original)."""
    if not is_patched(text):
        return text
    out: list[list[str]] = []
    join_next = False
    for content, eol in _remove_regions(_lines(text), BEGIN_PREFIX, END_MARKER, "the k2s-dns block"):
        if join_next and out:
            # The line patch() split before a closing brace: the brace goes back where it was.
            out[-1][0] += content.lstrip(" \t")
            out[-1][1] = eol
            join_next = False
            continue
        join_next = False
        if OWNED_SPLIT in content:
            join_next = True
            continue
        at = content.find(REPLACED_PREFIX)
        if at != -1 and not content[:at].strip():
            out.append([content[:at] + content[at + len(REPLACED_PREFIX) :], eol])  # the line as it was
            continue
        at = content.find(OWNED_LINE)
        if at != -1:
            rest = content[at + len(OWNED_LINE) :]
            if rest and out:  # k2s-dns 0.1 left the rest of the original line here
                out[-1][0] += rest
                out[-1][1] = eol
            continue
        content = content.replace(" " + OWNED_BLOCK, "")
        out.append([_drop_added_zones(content), eol])
    return "".join(content + eol for content, eol in out)


# --- NodeLocal DNSCache ---------------------------------------------------------------------------------------


def nodelocal_is_patched(text: str) -> bool:
    return NODELOCAL_BEGIN_PREFIX in text


def _forward_upstreams(block: ServerBlock) -> list[str] | None:
    for d in block.directives:
        if d.name == "forward" and d.args and d.args[0] == ".":
            return d.args[1:]
    return None


def nodelocal_patch(text: str, zone: str, cluster_domain: str) -> str:
    """Return the node-local-dns Corefile with zone forwarded to CoreDNS like the cluster domain.

    NodeLocal DNSCache sends only the cluster domain (and reverse zones) to CoreDNS and
    everything else to the node's resolvers, so a zone outside the cluster domain needs
    a server block of its own. It is a copy of the cluster domain's block (same bind,
    same forward to __PILLAR__CLUSTER__DNS__, same cache) without its health endpoint,
    between marker lines. Nothing to do for a zone inside the cluster domain, or when a
    server block for the zone already forwards it the same way.
    """
    _check_zone(zone)
    text = nodelocal_unpatch(text)
    if _within(zone, cluster_domain):
        return text
    blocks = parse(text)
    domain = _fqdn(cluster_domain)
    cluster = [b for b in blocks if any(a.transport == "dns" and domain in a.zones for a in addresses(b))]
    if len(cluster) != 1:
        problem = "no server block" if not cluster else "more than one server block"
        raise CorefileError(
            f"node-local-dns Corefile has {problem} for the cluster domain '{cluster_domain}' to model the "
            f"forward on; add a server block '{zone}:53' with the same bind and "
            "'forward . __PILLAR__CLUSTER__DNS__' as the cluster domain's by hand"
        )
    model = cluster[0]
    upstreams = _forward_upstreams(model)
    if not upstreams:
        raise CorefileError(
            f"node-local-dns server block '{model.label}' (line {model.line}) has no 'forward .'; add a server "
            f"block '{zone}:53' that forwards to CoreDNS (__PILLAR__CLUSTER__DNS__) by hand"
        )
    serving = _serving(blocks, zone)
    if serving is not None and serving[1] != ".":
        block = serving[0]
        if _forward_upstreams(block) == upstreams:
            return text  # forwarded to CoreDNS already
        raise CorefileError(
            f"node-local-dns server block '{block.label}' (line {block.line}) serves '{zone}' but does not forward "
            f"it to CoreDNS like '{model.label}' does; make it 'forward . {' '.join(upstreams)}', or remove it"
        )
    start = _line_start(text, model.keys[0].start)
    pieces, pos = [], model.keys[-1].end
    for d in model.directives:
        # The health endpoint listens on an address of its own, and node-local-dns needs it once.
        own_line = d.line_start > model.open_brace and not text[d.line_start : d.tokens[0].start].strip()
        if d.name == "health" and own_line:
            pieces.append(text[pos : d.line_start])
            pos = _after_line(text, d.end)
    body = "".join(pieces) + text[pos : model.close_brace + 1]
    insert_at = _after_line(text, model.close_brace)
    eol = _eol_before(text, insert_at)
    lead = "" if eol else ("\r\n" if "\r\n" in text else "\n")
    eol = eol or lead
    indent = text[start : model.keys[0].start]
    region = f"{indent}{NODELOCAL_BEGIN_MARKER}{eol}{indent}{zone}:53{body}{eol}{indent}{NODELOCAL_END_MARKER}"
    patched = text[:insert_at] + lead + region + ("" if lead else eol) + text[insert_at:]
    parse(patched)
    return patched


def nodelocal_unpatch(text: str) -> str:
    """Remove the server block nodelocal_patch() added, and nothing else."""
    if not nodelocal_is_patched(text):
        return text
    out = _remove_regions(
        _lines(text), NODELOCAL_BEGIN_PREFIX, NODELOCAL_END_MARKER, "the k2s-dns node-local-dns block"
    )
    return "".join(content + eol for content, eol in out)
