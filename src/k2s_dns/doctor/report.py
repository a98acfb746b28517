"""doctor's output: a table a person reads at a glance (a line a hop, the fix under a failure), or JSON."""

from __future__ import annotations

import json
import shutil
import textwrap

from .checks import FAIL, WARN
from .run import Report

HOP_WIDTH = 13


def table(report: Report, width: int | None = None) -> str:
    width = width or max(80, min(shutil.get_terminal_size((120, 24)).columns, 160))
    what = report.host or "the installation (no HOST given)"
    lines = [
        f"k2s-dns doctor: {what}; release {report.names.release} in namespace {report.names.namespace}",
        f"{'STATUS':<6} {'HOP':<{HOP_WIDTH}} DETAIL",
    ]
    indent = " " * (6 + 1 + HOP_WIDTH + 1)
    for r in report.results:
        head = f"{r.status:<6} {r.hop:<{HOP_WIDTH}} "
        lines += textwrap.wrap(
            r.detail,
            width,
            initial_indent=head,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        ) or [head.rstrip()]
        if r.fix and r.status in (FAIL, WARN):
            lines += textwrap.wrap(
                r.fix,
                width,
                initial_indent=indent + "fix: ",
                subsequent_indent=indent + "     ",
                break_on_hyphens=False,
                break_long_words=False,
            )
    verdict = f"broken hop: {report.failed}" if report.failed else "no broken hop"
    lines.append(f"{verdict} ({report.seconds:.1f} s)")
    return "\n".join(lines)


def as_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2)
