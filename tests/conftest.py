"""Shared test configuration: where the chart and the pinned tools are."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "k2s-dns"


def tool(name: str) -> str:
    local = REPO / "bin" / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise pytest.UsageError(f"{name} not found: run `make tools`")
    return found


@pytest.fixture(scope="session")
def helm_bin() -> str:
    return os.environ.get("HELM", tool("helm"))
