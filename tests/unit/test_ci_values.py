"""charts/k2s-dns/ci/*-values.yaml, the installs `ct lint` and `ct install` (ct.yaml) run: each says what it
covers, renders valid Kubernetes 1.34 objects, and needs no image but the defaults the test cluster preloads."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from tests.conftest import CHART

from .conftest import KUBE_VERSION, pod_specs

CI_FILES = sorted((CHART / "ci").glob("*-values.yaml"))


def test_there_are_ci_values_files():
    assert len(CI_FILES) >= 2, CI_FILES


@pytest.mark.parametrize("path", CI_FILES, ids=lambda p: p.name)
def test_ci_values_file_starts_with_what_it_covers(path):
    assert path.read_text().startswith("# "), f"{path.name} does not start with a comment saying what it covers"


@pytest.mark.parametrize("path", CI_FILES, ids=lambda p: p.name)
def test_ci_values_file_renders_valid_objects_with_the_default_images(path, render):
    values = yaml.safe_load(path.read_text()) or {}
    defaults = {c["image"] for _, spec in pod_specs(render()) for c in spec["containers"]}
    objects = render(values)
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    for name, spec in pod_specs(objects):
        for container in spec["containers"] + spec.get("initContainers", []):
            assert container["image"] in defaults, f"{path.name}: {name} runs {container['image']}, not preloaded"
            assert container["imagePullPolicy"] == "IfNotPresent", f"{path.name}: {name} would pull"
