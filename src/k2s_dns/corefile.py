"""Pure Corefile patcher: add (or remove) k2s-dns's etcd block and kubernetes fall-through.

Works on the text itself, so everything it does not own (comments, layout,
other server blocks, imports) is kept byte for byte. Anything it cannot parse
with certainty raises :class:`CorefileError` and nothing is changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BEGIN_MARKER = "# BEGIN k2s-dns etcd block (managed by the k2s-dns chart; do not edit)"
END_MARKER = "# END k2s-dns etcd block"
OWNED_LINE = "# k2s-dns: added"
OWNED_ZONE = "# k2s-dns: +"
OWNED_BLOCK = "{ # k2s-dns: +block"


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


@dataclass
class ServerBlock:
    keys: list[Token]
    open_brace: int
    close_brace: int
    directives: list[Directive]


def tokenize(text: str) -> list[Token]:
    """Caddyfile-style lexer: words, quoted strings, braces; `#` starts a comment."""
    tokens: list[Token] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch.isspace():
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
        elif ch in "{}" and not text.startswith("{$", i):
            tokens.append(Token(ch, i, line))
            i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and (text[i] not in '{}"' or text.startswith("{$", i)):
                if text.startswith("{$", i):
                    i = text.find("}", i) + 1 or n
                    continue
                i += 1
            tokens.append(Token(text[start:i], start, line))
    return tokens


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    def _peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _same_line_run(self) -> list[Token]:
        """Tokens up to the end of the current line (stopping before a brace)."""
        first = self.tokens[self.pos]
        run = []
        while (tok := self._peek()) and tok.line == first.line and tok.text not in "{}":
            run.append(tok)
            self.pos += 1
        return run

    def parse(self) -> list[ServerBlock]:
        blocks = []
        while (tok := self._peek()) is not None:
            if tok.text in "{}":
                raise CorefileError(f"line {tok.line}: unexpected '{tok.text}' outside a server block")
            keys = self._same_line_run()
            # Keys may continue on the next line after a trailing comma.
            while keys[-1].text.endswith(",") and (nxt := self._peek()) and nxt.text not in "{}":
                keys += self._same_line_run()
            if keys[0].text == "import":
                continue
            brace = self._peek()
            if brace is None or brace.text != "{":
                raise CorefileError(f"line {keys[0].line}: server block '{keys[0].text}' has no '{{'")
            self.pos += 1
            directives, close = self._directives(brace)
            blocks.append(ServerBlock(keys, brace.start, close.start, directives))
        return blocks

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
            directive = Directive(run, _line_start(self.text, run[0].start), run[-1].start + len(run[-1].text))
            nxt = self._peek()
            if nxt is not None and nxt.text == "{" and nxt.line == run[-1].line:
                self.pos += 1
                children, close = self._directives(nxt)
                directive.block = (nxt.start, close.start)
                directive.children = children
                directive.end = close.start + 1
            directives.append(directive)


def parse(text: str) -> list[ServerBlock]:
    """Parse a Corefile into server blocks; raises CorefileError when it cannot."""
    return _Parser(text).parse()


def _normalize_key(key: str) -> tuple[str, str]:
    """('zone.', 'port') for a server block key such as `.:53`, `dns://example.org`."""
    key = key.rstrip(",")
    key = re.sub(r"^dns://", "", key)
    zone, _, port = key.partition(":")
    if "://" in key:  # tls://, grpc://, https://: other transports are not our target
        return key, ""
    zone = zone or "."
    return (zone if zone.endswith(".") else zone + "."), (port or "53")


def _fqdn(zone: str) -> str:
    zone = zone.lower()
    return zone if zone.endswith(".") else zone + "."


def _within(name: str, zone: str) -> bool:
    name, zone = _fqdn(name), _fqdn(zone)
    return zone == "." or name == zone or name.endswith("." + zone)


def find_server_block(blocks: list[ServerBlock], server: str) -> ServerBlock:
    target = _normalize_key(server)
    matches = [b for b in blocks if any(_normalize_key(k.text) == target for k in b.keys)]
    if not matches:
        found = ", ".join(k.text for b in blocks for k in b.keys) or "none"
        raise CorefileError(f"no server block for '{server}' (server blocks found: {found})")
    if len(matches) > 1:
        raise CorefileError(f"more than one server block for '{server}'")
    return matches[0]


def is_patched(text: str) -> bool:
    return BEGIN_MARKER in text


def _indent_of(text: str, directive: Directive) -> str:
    line = text[directive.line_start : directive.tokens[0].start]
    return line if line.strip() == "" else "    "


def _fallthrough_edit(
    text: str, kubernetes: Directive, zone: str, server_zones: list[str], eol: str
) -> tuple[int, str] | None:
    """The (offset, insertion) that makes `kubernetes` fall through for zone, or None."""
    k8s_zones = [z for z in kubernetes.args if not z.startswith("{")] or server_zones
    overlaps = [z for z in k8s_zones if _within(zone, z) or _within(z, zone)]
    if not overlaps:
        return None  # the kubernetes plugin never answers names of this zone
    wanted = _fqdn(zone) if any(_within(zone, z) for z in overlaps) else None
    zones_to_add = [zone] if wanted else [z for z in overlaps if _within(z, zone)]
    indent = _indent_of(text, kubernetes)
    for child in kubernetes.children or []:
        if child.name != "fallthrough":
            continue
        if not child.args:
            return None  # falls through for every zone already
        missing = [z for z in zones_to_add if not any(_within(z, have) for have in child.args)]
        if not missing:
            return None
        addition = " " + " ".join(missing)
        comment = " " + OWNED_ZONE + ",".join(missing)
        return child.end, addition + comment
    line = f"{indent}    fallthrough {' '.join(zones_to_add)} {OWNED_LINE}{eol}"
    if kubernetes.block is None:
        return kubernetes.end, f" {OWNED_BLOCK}{eol}{line}{indent}}} {OWNED_LINE}"
    close = kubernetes.block[1]
    insert_at = _line_start(text, close)
    if text[insert_at:close].strip():  # closing brace shares a line with content
        return close, eol + line + indent
    return insert_at, line


def _apply(text: str, insertions: list[tuple[int, str]]) -> str:
    """Insert text at offsets; insertions at one offset keep their order in the list."""
    for offset in sorted({at for at, _ in insertions}, reverse=True):
        text = text[:offset] + "".join(s for at, s in insertions if at == offset) + text[offset:]
    return text


def patch(text: str, server: str, settings: EtcdSettings) -> str:
    """Return the Corefile with k2s-dns's etcd block and fall-through in place.

    Idempotent: patching a patched Corefile replaces the managed block.
    """
    if is_patched(text):
        text = unpatch(text)
    eol = "\r\n" if "\r\n" in text else "\n"
    blocks = parse(text)
    block = find_server_block(blocks, server)
    for directive in block.directives:
        if directive.name == "etcd":
            raise CorefileError(
                f"line {directive.tokens[0].line}: server block '{server}' already has an etcd plugin "
                "not managed by k2s-dns; CoreDNS allows one per server block"
            )
    server_zones = [_normalize_key(k.text)[0] for k in block.keys]
    edits: list[tuple[int, str]] = []
    kubernetes = next((d for d in block.directives if d.name == "kubernetes"), None)
    if kubernetes is not None:
        edit = _fallthrough_edit(text, kubernetes, settings.zone, server_zones, eol)
        if edit:
            edits.append(edit)
    if not block.directives:
        raise CorefileError(f"server block '{server}' is empty")
    anchor = kubernetes or block.directives[-1]
    indent = _indent_of(text, anchor)
    managed = [BEGIN_MARKER, *settings.lines(), END_MARKER]
    insertion = "".join(eol + indent + line for line in managed)
    edits.append((anchor.end, insertion))
    text = _apply(text, edits)
    parse(text)  # what we write must parse again
    return text


def unpatch(text: str) -> str:
    """Remove only what patch() added: the marked block and the marked fall-through."""
    out: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped == BEGIN_MARKER:
            inside = True
        elif inside:
            inside = stripped != END_MARKER
        elif line.rstrip().endswith(OWNED_LINE):
            continue
        elif line.rstrip().endswith(OWNED_BLOCK):
            body = line.rstrip("\r\n")
            out.append(body[: -len(OWNED_BLOCK)].rstrip() + line[len(body) :])
        elif OWNED_ZONE in line:
            out.append(_drop_added_zones(line))
        else:
            out.append(line)
    if inside:
        raise CorefileError("the k2s-dns block has no end marker; not touching it")
    return "".join(out)


def _drop_added_zones(line: str) -> str:
    body = line.rstrip("\r\n")
    newline = line[len(body) :]
    code, _, tail = body.partition(" " + OWNED_ZONE)
    zones, _, remainder = tail.partition(" ")
    words = code.split(" ")
    for zone in reversed(zones.split(",")):
        if words and words[-1] == zone:
            words.pop()
    return " ".join(words) + (" " + remainder if remainder else "") + newline
