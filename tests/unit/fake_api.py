"""An in-memory API server for the hook, converge and controller tests: objects by path, PUT with
resourceVersion checks, Deployments that roll out at once unless told to hang."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

from k2s_dns import kube

COREFILE = (Path(__file__).parent / "corefiles" / "kubeadm-1.34.Corefile").read_text()
CM = kube.configmap_path("kube-system", "coredns")
DEPLOY = kube.deployment_path("kube-system", "coredns")
SVC = kube.service_path("k2s-dns", "k2s-dns-etcd")
DESIRED = kube.configmap_path("k2s-dns", "k2s-dns-coredns-desired")
CLIENT = kube.secret_path("kube-system", "etcd-client-for-core-dns")
CA = kube.secret_path("kube-system", "etcd-ca")
CONTROLLER = kube.deployment_path("k2s-dns", "k2s-dns-controller")

DESIRED_SPEC = {
    "zone": "cluster.local",
    "path": "/skydns",
    "endpoints": ["https://k2s-dns-etcd.k2s-dns.svc.cluster.local:2379"],
    "hostAliases": ["k2s-dns-etcd.k2s-dns.svc.cluster.local=k2s-dns/k2s-dns-etcd"],
    "serverBlock": "",
    "tls": True,
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class FakeApi:
    """Stores objects by path; PUT enforces resourceVersion like the API server."""

    def __init__(self, objects: dict[str, dict]):
        self.objects = copy.deepcopy(objects)
        self.writes: list[str] = []
        self.conflicts: dict[str, int] = {}
        self.events: list[dict] = []
        self.hang_rollouts = False  # True: Deployments stay mid-rollout after a spec change

    def get(self, path: str) -> dict:
        if "?" in path:  # a pod list by label selector: the controller's pods
            return {"items": copy.deepcopy(self.objects.get("pods", []))}
        if path not in self.objects:
            raise kube.ApiError(404, f"{path} not found")
        return copy.deepcopy(self.objects[path])

    def list(self, path: str) -> dict:
        """A cluster-wide collection, stored under its path like an object."""
        return self.get(path)

    def put(self, path: str, body: dict) -> dict:
        current = self.objects[path]
        if self.conflicts.get(path):
            self.conflicts[path] -= 1
            current["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise kube.ApiError(409, "the object has been modified")
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        if "status" in current:  # a Deployment
            if body["spec"] != current["spec"]:
                body["metadata"]["generation"] = current["metadata"]["generation"] + 1
            replicas = body["spec"]["replicas"]
            done = not self.hang_rollouts
            body["status"] = {
                "observedGeneration": body["metadata"]["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas if done else 0,
                "availableReplicas": replicas,
            }
        self.objects[path] = body
        self.writes.append(path)
        return copy.deepcopy(body)

    def finish_rollouts(self) -> None:
        for obj in self.objects.values():
            if isinstance(obj, dict) and "status" in obj:
                obj["status"]["updatedReplicas"] = obj["spec"]["replicas"]

    def create_event(self, namespace: str, body: dict) -> None:
        self.events.append(body)

    def corefile(self) -> str:
        return self.objects[CM]["data"]["Corefile"]

    def set_desired(self, **changes: object) -> None:
        spec = {**json.loads(self.objects[DESIRED]["data"]["desired.json"]), **changes}
        self.objects[DESIRED]["data"]["desired.json"] = json.dumps(spec)


def cluster(coredns_deployment: dict) -> FakeApi:
    deploy = copy.deepcopy(coredns_deployment)
    deploy["metadata"].update({"resourceVersion": "20", "generation": 1})
    deploy["status"] = {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
    controller = {
        "metadata": {"name": "k2s-dns-controller", "resourceVersion": "3", "generation": 1},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app.kubernetes.io/component": "controller"}}},
        "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1},
    }
    return FakeApi(
        {
            CM: {"metadata": {"name": "coredns", "resourceVersion": "10"}, "data": {"Corefile": COREFILE}},
            DEPLOY: deploy,
            SVC: {"metadata": {"name": "k2s-dns-etcd", "resourceVersion": "1"}, "spec": {"clusterIP": "10.96.0.50"}},
            DESIRED: {
                "metadata": {"name": "k2s-dns-coredns-desired", "namespace": "k2s-dns", "resourceVersion": "1"},
                "data": {"desired.json": json.dumps(DESIRED_SPEC)},
            },
            CLIENT: {"metadata": {"resourceVersion": "1"}, "data": {"tls.crt": b64("crt"), "tls.key": b64("key")}},
            CA: {"metadata": {"resourceVersion": "1"}, "data": {"ca.crt": b64("ca")}},
            CONTROLLER: controller,
        }
    )
