"""Three bundled etcd members on PersistentVolumeClaims (the cluster's default StorageClass, local-path):
they form one cluster; losing a follower, then the leader, loses no record and fails no lookup; and with
ExternalDNS stopped, so nothing could write the records again, they survive a restart of every member."""

from __future__ import annotations

import json
import time

from .conftest import coredns_state, install, installed
from .helpers import NAMESPACE, RELEASE, Watch, diagnostics, etcdctl, helm, kubectl, kubectl_json, resolves_to, wait_for

MEMBERS = ["--set", "etcd.bundled.replicas=3", "--set", "etcd.bundled.persistence.enabled=true"]
STATEFULSET = f"{RELEASE}-etcd"


def etcd_pods() -> list[str]:
    return [f"{STATEFULSET}-{i}" for i in range(3)]


def local_status(pod: str) -> dict:
    """A member's own status, asked on its loopback: the chart's NetworkPolicy admits only ExternalDNS and
    CoreDNS to the client port, so one member cannot ask another (`endpoint status --cluster` is refused)."""
    return json.loads(etcdctl("endpoint", "status", "-w", "json", pod=pod))[0]


def member_names(pod: str) -> dict[int, str]:
    members = json.loads(etcdctl("member", "list", "-w", "json", pod=pod))["members"]
    return {m["ID"]: m.get("name", "") for m in members}


def leader(pod: str) -> str:
    """The leader's name, as the member `pod` sees it."""
    return member_names(pod)[local_status(pod)["Status"]["leader"]]


def healthy_cluster(via: str) -> bool:
    """Three started members, each answering on its own, all agreeing on one leader."""
    try:
        names = member_names(via)
        leaders = {local_status(pod)["Status"]["leader"] for pod in etcd_pods()}
    except (RuntimeError, json.JSONDecodeError, KeyError, IndexError):
        return False
    return len(names) == 3 and all(names.values()) and len(leaders) == 1 and leaders.pop() in names


def record_keys(pod: str) -> str:
    return etcdctl("get", "--prefix", "/skydns", "--keys-only", pod=pod)


def wait_member_back(pod: str) -> None:
    kubectl("-n", NAMESPACE, "rollout", "status", f"statefulset/{STATEFULSET}", "--timeout=240s")
    kubectl("-n", NAMESPACE, "wait", "--for=condition=Ready", f"pod/{pod}", "--timeout=240s")
    wait_for(lambda: healthy_cluster(pod), 120, f"{pod} back in a healthy 3-member cluster", diagnostics, interval=2)


def test_three_members_with_persistence(coredns_before, resolver, ingresses, service_probe, figure):
    if installed():
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    start = time.time()
    try:
        began = time.monotonic()
        install(*MEMBERS)
        figure(f"3 etcd members with persistence: helm install --wait took {time.monotonic() - began:.0f}s")
        # ExternalDNS exits on its first etcd error: its wait-for-etcd init container holds it back until the
        # three members have a leader, so it starts once and never crash-loops through the install.
        pods = kubectl_json("-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=external-dns")["items"]
        restarts = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"] for p in pods}
        waited = kubectl("-n", NAMESPACE, "logs", f"deployment/{RELEASE}-external-dns", "-c", "wait-for-etcd")
        figure(f"3 etcd members: ExternalDNS restarts {restarts}; wait-for-etcd: {waited.splitlines()[-1]}")
        assert restarts and set(restarts.values()) == {0}, f"ExternalDNS restarted during the install: {restarts}"
        claims = kubectl_json("-n", NAMESPACE, "get", "pvc")["items"]
        data = [c for c in claims if c["metadata"]["name"].startswith(f"data-{STATEFULSET}-")]
        assert len(data) == 3 and all(c["status"]["phase"] == "Bound" for c in data), [
            (c["metadata"]["name"], c["status"].get("phase")) for c in claims
        ]
        wait_for(lambda: healthy_cluster(etcd_pods()[0]), 120, "one cluster of three members", diagnostics)
        placement = {
            p["metadata"]["name"]: p["spec"]["nodeName"]
            for p in kubectl_json("-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=etcd")["items"]
        }
        print(f"etcd members on nodes: {placement}")

        host = f"members-{ingresses.namespace.rsplit('-', 1)[-1]}.cluster.local"
        ingresses.apply("members", [host], ["192.0.2.96"])
        published = resolves_to(resolver, host, {"192.0.2.96"})
        wait_for(published, 90, "record in the three-member cluster", diagnostics)
        key = f"/skydns/local/cluster/{host.split('.')[0]}"
        assert all(key in record_keys(pod) for pod in etcd_pods()), "the record is not on every member"

        watch = Watch(resolver, host, {"192.0.2.96"})
        watch.thread.start()
        try:
            first_leader = leader(etcd_pods()[0])
            follower = next(p for p in etcd_pods() if p != first_leader)
            kubectl("-n", NAMESPACE, "delete", "pod", follower, "--wait=true")
            wait_member_back(follower)
            assert key in record_keys(follower), f"{follower} came back without the record"

            current = leader(follower)
            kubectl("-n", NAMESPACE, "delete", "pod", current, "--wait=true")
            survivor = next(p for p in etcd_pods() if p != current)
            wait_for(lambda: leader(survivor) != current, 60, "a new leader elected", diagnostics, interval=1)
            wait_member_back(current)
            figure(f"3 etcd members: follower {follower} and leader {current} deleted in turn")
        finally:
            watch.stop.set()
            watch.thread.join()
        figure(
            f"3 etcd members: {len(watch.failures)} of {watch.total} lookups failed while a follower and the "
            f"leader were deleted; slowest answer {watch.slowest:.2f}s"
        )
        assert watch.failures == [], f"lookups failed while members were replaced: {watch.failures}"
        assert all(key in record_keys(pod) for pod in etcd_pods())

        # Persistence: with ExternalDNS stopped nothing can write the record again, so a record present after
        # every member restarted was kept on disk.
        kubectl("-n", NAMESPACE, "scale", f"deployment/{RELEASE}-external-dns", "--replicas=0")
        kubectl(
            "-n",
            NAMESPACE,
            "wait",
            "--for=delete",
            "pod",
            "-l",
            "app.kubernetes.io/component=external-dns",
            "--timeout=120s",
        )
        kubectl("-n", NAMESPACE, "delete", "pod", "-l", "app.kubernetes.io/component=etcd", "--wait=true")
        for pod in etcd_pods():
            wait_member_back(pod)
        assert all(key in record_keys(pod) for pod in etcd_pods()), "records lost when every member restarted"
        wait_for(published, 60, "record answered after every member restarted", diagnostics)
        kubectl("-n", NAMESPACE, "scale", f"deployment/{RELEASE}-external-dns", "--replicas=1")
        kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{RELEASE}-external-dns", "--timeout=180s")

        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
        assert coredns_state()["Corefile"] == coredns_before["Corefile"]
        # persistence.whenDeleted=Delete: the StatefulSet controller deletes the claims with the StatefulSet.
        wait_for(
            lambda: not kubectl("-n", NAMESPACE, "get", "pvc", "-l", "app.kubernetes.io/component=etcd", "-o", "name"),
            120,
            "the data volumes deleted with the release",
        )
    finally:
        if installed():
            helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
        # Whatever happened above, a later install starts empty.
        kubectl(
            "-n",
            NAMESPACE,
            "delete",
            "pvc",
            "-l",
            "app.kubernetes.io/component=etcd",
            "--ignore-not-found",
            "--wait=true",
        )
    assert service_probe.failures_since(start) == [], "Service names failed while etcd members were replaced"
