"""README's GitOps path on a real cluster: its script creates the certificates and the password as Secrets,
the chart installed with its values generates none, etcd (authentication, peer CN) and its clients work with
them, and uninstall leaves them, since they are the user's."""

from __future__ import annotations

import re
import subprocess
import tempfile
import time

import yaml

from tests.conftest import CHART, REPO

from .conftest import coredns_state, install, installed
from .helpers import NAMESPACE, RELEASE, diagnostics, helm, kubectl, resolves_to, wait_for

SECTION = re.compile(
    r"<!-- gitops:begin -->\n```bash\n(?P<script>.*?)```\n\n```yaml\n(?P<values>.*?)```\n<!-- gitops:end -->", re.S
)


def test_gitops_example_from_the_readme(coredns_before, resolver, ingresses, service_probe):
    match = SECTION.search((REPO / "README.md").read_text())
    assert match, "README has no GitOps example"
    values = yaml.safe_load(match["values"])
    assert RELEASE == "k2s-dns" and NAMESPACE == "k2s-dns", "the README example is for release k2s-dns/k2s-dns"
    if installed():
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    if not kubectl("get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "name"):
        kubectl("create", "namespace", NAMESPACE)
    named = values["etcd"]["bundled"]["existingSecrets"]
    secrets = [(NAMESPACE, name) for name in named.values()]
    secrets += [("kube-system", values["coredns"]["clientSecret"]), ("kube-system", values["coredns"]["caSecret"])]
    start = time.time()
    try:
        with tempfile.TemporaryDirectory() as work:
            result = subprocess.run(
                ["bash", "-c", match["script"]], cwd=work, capture_output=True, text=True, check=False
            )
            assert result.returncode == 0, result.stderr
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values_file:
            values_file.write(match["values"])
            values_file.flush()
            # What Argo CD renders: helm template, twice, the same.
            rendered = [
                helm(
                    "template", RELEASE, str(CHART), "-n", NAMESPACE, "--kube-version", "1.34", "-f", values_file.name
                ).stdout
                for _ in range(2)
            ]
            assert rendered[0] == rendered[1]
            install("-f", values_file.name)
        manifest = helm("get", "manifest", RELEASE, "-n", NAMESPACE).stdout
        assert "kind: Secret" not in manifest, "the chart generated a Secret despite existingSecrets"
        ingresses.apply("gitops", ["gitops.cluster.local"], ["192.0.2.130"])
        wait_for(resolves_to(resolver, "gitops.cluster.local", {"192.0.2.130"}), 90, "record", diagnostics)
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
        assert coredns_state()["Corefile"] == coredns_before["Corefile"]
        for namespace, name in secrets:
            assert kubectl("-n", namespace, "get", "secret", name, "-o", "name"), f"{namespace}/{name} deleted"
    finally:
        for namespace, name in secrets:
            kubectl("-n", namespace, "delete", "secret", name, "--ignore-not-found")
    assert service_probe.failures_since(start) == [], "Service names failed in the GitOps install"
