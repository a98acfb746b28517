"""Copy bench/results/results.md into README.md between the bench markers."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def main() -> int:
    readme = (REPO / "README.md").read_text()
    table = (REPO / "bench" / "results" / "results.md").read_text().strip()
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    (REPO / "README.md").write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
