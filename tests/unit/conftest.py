"""Fixtures for the unit tier: render the chart with `helm template`, no cluster."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import CHART

KUBE_VERSION = "1.34.0"
Render = Callable[..., list[dict]]


class RenderError(Exception):
    pass


def helm_template(helm: str, values: dict, tmp: Path, *extra: str) -> str:
    values_file = tmp / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    cmd = [
        helm,
        "template",
        "k2s-dns",
        str(CHART),
        "--namespace",
        "k2s-dns",
        "--kube-version",
        KUBE_VERSION,
        "-f",
        str(values_file),
        *extra,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RenderError(result.stderr)
    return result.stdout


@pytest.fixture
def render(helm_bin: str, tmp_path: Path) -> Render:
    """render(values, *helm_args) -> rendered objects (hooks and tests included)."""

    def _render(values: dict | None = None, *extra: str) -> list[dict]:
        text = helm_template(helm_bin, values or {}, tmp_path, *extra)
        return [doc for doc in yaml.safe_load_all(text) if doc]

    return _render


@pytest.fixture
def render_error(helm_bin: str, tmp_path: Path) -> Callable[[dict], str]:
    """render_error(values) -> helm's error message; fails the test if rendering succeeds."""

    def _render_error(values: dict) -> str:
        try:
            helm_template(helm_bin, values, tmp_path)
        except RenderError as err:
            return str(err)
        pytest.fail(f"helm template accepted invalid values {values}")

    return _render_error


def find(objects: list[dict], kind: str, name: str | None = None) -> dict:
    matches = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in matches]}"
    return matches[0]


def pod_specs(objects: list[dict]) -> list[tuple[str, dict]]:
    specs = []
    for obj in objects:
        if obj["kind"] == "Pod":
            specs.append((obj["metadata"]["name"], obj["spec"]))
        elif obj["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
            specs.append((obj["metadata"]["name"], obj["spec"]["template"]["spec"]))
        elif obj["kind"] == "CronJob":
            specs.append((obj["metadata"]["name"], obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return specs


@pytest.fixture
def coredns_deployment() -> dict:
    """The CoreDNS Deployment as kubeadm creates it (the parts the hook edits)."""
    return {
        "metadata": {"name": "coredns", "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"labels": {"k8s-app": "kube-dns"}},
                "spec": {
                    "containers": [
                        {
                            "name": "coredns",
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
                        }
                    ],
                    "volumes": [{"name": "config-volume", "configMap": {"name": "coredns"}}],
                },
            },
        },
    }


@pytest.fixture
def api(coredns_deployment: dict):
    """An in-memory cluster with CoreDNS as kubeadm makes it and the chart's desired state."""
    from tests.unit.fake_api import cluster

    return cluster(coredns_deployment)
