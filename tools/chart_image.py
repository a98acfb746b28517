"""Print the default image reference of a chart value path, e.g. `coredns.patch.image`.

Keeps image names in one place (values.yaml) for the build scripts and tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent.parent / "charts" / "k2s-dns"


def image_ref(path: str) -> str:
    node = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    for key in path.split("."):
        node = node[key]
    tag = node.get("tag") or chart["version"]
    registry = node.get("registry")
    return f"{registry}/{node['repository']}:{tag}" if registry else f"{node['repository']}:{tag}"


if __name__ == "__main__":
    print(image_ref(sys.argv[1]))
