"""Reading NOTES.txt's instructions for `coredns.patch.enabled=false` (unit and e2e tests apply them)."""

from __future__ import annotations

import re


def steps(notes: str) -> dict[int, str]:
    """The numbered steps ("1. ...") of the instructions, by number."""
    parts = re.split(r"^(\d)\. ", notes.split("coredns.patch.enabled is false", 1)[1], flags=re.M)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def zone_block(notes: str) -> list[str]:
    """The server block for the zone as printed (4 spaces in), as it goes into the Corefile."""
    lines = notes.splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"    \S+:53 \{", line))
    end = next(i for i in range(start, len(lines)) if lines[i] == "    }")
    return [line[4:] for line in lines[start : end + 1]]


def etcd_block(notes: str) -> list[str]:
    """The etcd plugin's block inside it (4 spaces in)."""
    lines = zone_block(notes)
    start = next(i for i, line in enumerate(lines) if line.startswith("    etcd "))
    end = next(i for i in range(start, len(lines)) if lines[i] == "    }")
    return lines[start : end + 1]


def shell_commands(text: str) -> str:
    """The commands in `text` (indented lines starting with a command, with their continuations), dedented."""
    out, taking = [], False
    for line in text.splitlines():
        stripped = line[4:] if line.startswith("    ") else None
        if stripped is not None and (stripped.startswith(("ETCD_IP=", "kubectl ")) or taking):
            out.append(stripped)
            taking = stripped.endswith("\\")
        else:
            taking = False
    return "\n".join(out)
