"""README documents every value, and its values table matches values.yaml."""

from __future__ import annotations

import yaml
from tools import values_table

from tests.conftest import CHART, REPO


def leaves(node, prefix=""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip(".")


def test_every_value_is_documented():
    text = (CHART / "values.yaml").read_text()
    documented = {key for key, _ in values_table.documented_keys(text)}
    for leaf in leaves(yaml.safe_load(text)):
        parts = leaf.split(".")
        assert any(".".join(parts[:i]) in documented for i in range(1, len(parts) + 1)), f"{leaf} has no # -- comment"


def test_readme_values_table_is_current():
    readme = (REPO / "README.md").read_text()
    assert values_table.render(readme, (CHART / "values.yaml").read_text()) == readme


def test_readme_names_the_commands_ci_runs():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci


def test_chart_image_tags_match_versions_env():
    pins = dict(
        line.split("=", 1)
        for line in (REPO / "versions.env").read_text().splitlines()
        if "=" in line and line[0] != "#"
    )
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert values["externalDNS"]["image"]["tag"] == pins["EXTERNAL_DNS_VERSION"]
    assert chart["appVersion"] == pins["EXTERNAL_DNS_VERSION"].lstrip("v")
    assert values["etcd"]["bundled"]["image"]["tag"] == pins["ETCD_IMAGE_TAG"]
