"""README's "From the workstation" section, run as written on a Linux workstation: a container booting
systemd with systemd-resolved (images/workstation/build.sh) on the kind network, as a machine next to the
cluster. README's resolvectl commands send the zone, and only the zone, to CoreDNS (a node's address and
the suite's NodePort); then an Ingress host resolves there through resolved and through getaddrinfo."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import REPO

from .helpers import ZONE, kubectl_json, version, wait_for, wait_published

IMAGE = "k2s-dns.local/workstation:"


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def node_address() -> str:
    node = kubectl_json("get", "nodes", "-l", "node-role.kubernetes.io/control-plane")["items"][0]
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


@pytest.fixture
def workstation(resolver) -> Iterator[Callable[[str], subprocess.CompletedProcess]]:
    """A booted systemd workstation on the kind network; yields `sh -c` inside it. Removed afterwards."""
    nodeport = os.environ.get("E2E_DNS_NODEPORT")
    if not nodeport:
        pytest.fail("the workstation test needs the kind cluster of `make cluster` (E2E_DNS_NODEPORT, docker)")
    build = subprocess.run([str(REPO / "images/workstation/build.sh")], capture_output=True, text=True, check=False)
    assert build.returncode == 0, f"images/workstation/build.sh failed:\n{build.stderr[-3000:]}"
    name = f"k2s-dns-e2e-workstation-{uuid.uuid4().hex[:6]}"
    docker(
        "run", "-d", "--name", name, "--privileged", "--cgroupns=private", "--tmpfs", "/run", "--tmpfs", "/tmp",
        "--security-opt", "seccomp=unconfined", "--network", "kind", IMAGE + version("DEBIAN_SUITE"),
    )  # fmt: skip

    def sh(script: str) -> subprocess.CompletedProcess:
        return docker("exec", name, "sh", "-c", script, check=False)

    try:
        wait_for(
            lambda: sh("systemctl is-active systemd-resolved").stdout.strip() == "active",
            60,
            "systemd-resolved running in the workstation",
            lambda: sh("systemctl --failed; journalctl -b --no-pager | tail -30").stdout,
        )
        # Docker points the container's resolv.conf at its own resolver, which forwards off the machine; a
        # workstation with resolved uses resolved's stub.
        assert sh("echo 'nameserver 127.0.0.53' > /etc/resolv.conf").returncode == 0
        yield sh
    finally:
        docker("rm", "-f", name, check=False)


def test_resolvectl_sends_only_the_zone_to_coredns(workstation, ingresses, resolver):
    host = f"workstation-{ingresses.namespace.rsplit('-', 1)[-1]}.{ZONE}"
    ingresses.apply("workstation", [host], ["192.0.2.85"])
    # Until no CoreDNS replica can still deny it: resolved caches a NXDOMAIN it gets, for the SOA's minimum.
    wait_published(resolver, host, {"192.0.2.85"}, 90, "the name through the NodePort")

    server = f"{node_address()}:{os.environ['E2E_DNS_NODEPORT']}"
    # README, "Linux with systemd-resolved", with <iface> eth0 and <CoreDNS IP> a node's address and NodePort.
    for command in (f"resolvectl dns eth0 {server}", f"resolvectl domain eth0 '~{ZONE}'"):
        done = workstation(command)
        assert done.returncode == 0, f"{command}: {done.stderr}"
    query = workstation(f"resolvectl query {host}")
    assert query.returncode == 0 and "192.0.2.85" in query.stdout, query.stdout + query.stderr
    # getaddrinfo (nss-resolve), which browsers and every other program use.
    lookup = workstation(f"getent hosts {host}")
    assert lookup.returncode == 0 and lookup.stdout.split()[0] == "192.0.2.85", lookup.stdout + lookup.stderr
    # Service names come along (the zone is the cluster domain), and nothing else goes to CoreDNS: a name
    # outside the zone finds no server at all here (this workstation has no other DNS server).
    service = workstation(f"resolvectl query kubernetes.default.svc.{ZONE}")
    assert service.returncode == 0, service.stdout + service.stderr
    outside = workstation("resolvectl query example.org")
    assert outside.returncode != 0 and "No appropriate name servers" in outside.stderr, outside.stdout + outside.stderr
