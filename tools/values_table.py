"""Generate README.md's values table from the `# --` comments in values.yaml.

python tools/values_table.py --write README.md   # regenerate
python tools/values_table.py --check README.md   # fail if out of date (make lint)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

VALUES = Path(__file__).resolve().parent.parent / "charts" / "k2s-dns" / "values.yaml"
BEGIN, END = "<!-- values:begin -->", "<!-- values:end -->"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_]+):")


def documented_keys(text: str) -> list[tuple[str, str]]:
    """(dotted key, description) for every key preceded by a `# --` comment."""
    rows, stack, pending = [], [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = stripped[4:].strip()
            continue
        if stripped.startswith("#") and pending is not None:
            pending += " " + stripped.lstrip("# ")
            continue
        match = KEY.match(line)
        if not match:
            continue
        depth = len(match["indent"]) // 2
        stack[depth:] = [match["key"]]
        if pending is not None:
            rows.append((".".join(stack), pending))
            pending = None
    return rows


def lookup(values: dict, dotted: str):
    node = values
    for part in dotted.split("."):
        node = node[part]
    return node


def table(values_text: str) -> str:
    values = yaml.safe_load(values_text)
    lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for key, description in documented_keys(values_text):
        default = lookup(values, key)
        kind = {dict: "object", list: "list", bool: "bool", int: "int", str: "string"}.get(type(default), "any")
        shown = json.dumps(default, separators=(",", ":")).replace("|", "\\|")
        lines.append(f"| `{key}` | {kind} | `{shown}` | {description} |")
    return "\n".join(lines)


def render(readme: str, values_text: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README has no {BEGIN} ... {END} section")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table(values_text)}\n{END}{tail}"


def main() -> int:
    p = argparse.ArgumentParser()
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", metavar="README")
    mode.add_argument("--check", metavar="README")
    args = p.parse_args()
    path = Path(args.write or args.check)
    current = path.read_text()
    wanted = render(current, VALUES.read_text())
    if args.write:
        path.write_text(wanted)
        return 0
    if current != wanted:
        print(f"{path}: values table is out of date; run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
