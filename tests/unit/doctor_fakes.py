"""A healthy k2s-dns installation as the API server would return it, for `k2s-dns doctor`'s unit tests,
and a FakeKube that serves it through the same methods as doctor's cluster.Kube.

    .venv/bin/python -m tests.unit.doctor_fakes [healthy|no-record|...]   prints doctor's table for a scenario
    (README's example output comes from here).
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import sys
from pathlib import Path

from k2s_dns import corefile
from k2s_dns.deployment import EtcdClientMount, add_etcd_client
from k2s_dns.doctor import cluster
from k2s_dns.doctor.checks import Names

NOW = 1_760_000_000.0  # the fake clock
NAMES = Names("k2s-dns", "k2s-dns")
HOST = "web.cluster.local"
ADDRESS = "192.0.2.10"
ETCD_URL = "https://k2s-dns-etcd.k2s-dns.svc.cluster.local:2379"
ETCD_SERVICE_IP = "10.96.120.7"
COREDNS_IPS = ("10.244.0.3", "10.244.0.4")
DNS_SERVICE_IP = "10.96.0.10"
KUBEADM_COREFILE = (Path(__file__).parent / "corefiles" / "kubeadm-1.34.Corefile").read_text()
DESIRED = {
    "zone": "cluster.local",
    "path": "/skydns",
    "endpoints": [ETCD_URL],
    "tls": True,
    "namespace": "kube-system",
    "configmap": "coredns",
    "deployment": "coredns",
    "container": "coredns",
    "serverBlock": "",
    "clientSecret": "etcd-client-for-core-dns",
    "caSecret": "etcd-ca",
    "preStopSleep": 5,
    "hostAliases": ["k2s-dns-etcd.k2s-dns.svc.cluster.local=k2s-dns/k2s-dns-etcd"],
    "clusterDomain": "cluster.local",
    # `apps` publishes web.cluster.local, a name outside apps.cluster.local: trusted, like K2s's addons.
    "publicationPolicy": True,
    "trustedNamespaces": ["k2s-dns", "apps"],
    "trustedNamespaceLabel": "k2s-dns.io/trusted-publisher",
}
EXTERNAL_DNS_ARGS = [
    "--source=ingress",
    "--managed-record-types=A",
    "--managed-record-types=AAAA",
    "--managed-record-types=CNAME",
    "--managed-record-types=TXT",
    "--annotation-prefix=external-dns.kubernetes.io/",
    "--enable-legacy-annotation-prefix",
    "--provider=coredns",
    "--coredns-prefix=/skydns/",
    "--coredns-strictly-owned",
    "--registry=txt",
    "--txt-owner-id=k2s-dns",
    "--policy=sync",
    "--domain-filter=cluster.local",
    "--interval=1s",
    "--events",
    "--log-level=info",
    "--log-format=text",
]


def ts(seconds_ago: float) -> str:
    """A kubelet log timestamp `seconds_ago` before NOW."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(NOW - seconds_ago, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def meta(name: str, namespace: str = "k2s-dns", labels: dict | None = None, **extra) -> dict:
    return {"name": name, "namespace": namespace, "labels": labels or {}, "resourceVersion": "1", **extra}


def release_labels(component: str) -> dict:
    return {
        "app.kubernetes.io/name": "k2s-dns",
        "app.kubernetes.io/instance": "k2s-dns",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "k2s-dns",
    }


def pod(name: str, namespace: str, labels: dict, containers: dict[str, str], ip: str = "", ready: bool = True) -> dict:
    return {
        "kind": "Pod",
        "metadata": meta(name, namespace, labels),
        "spec": {"containers": [{"name": n, "image": i} for n, i in containers.items()]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True" if ready else "False"},
            ],
            "containerStatuses": [
                {"name": n, "image": i, "ready": ready, "restartCount": 0, "state": {"running": {}}}
                for n, i in containers.items()
            ],
        },
    }


def deployment(name: str, namespace: str, labels: dict, containers: list[dict], replicas: int = 1) -> dict:
    return {
        "kind": "Deployment",
        "metadata": meta(name, namespace, labels, generation=1),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
        },
    }


def helm_secret(status: str = "deployed", version: int = 1, config: dict | None = None) -> dict:
    image = {"registry": "ghcr.io", "repository": "k2s-dns/k2s-dns-hook", "tag": ""}
    release = {
        "info": {"status": status},
        "version": version,
        "chart": {"metadata": {"version": "0.1.0"}, "values": {"coredns": {"patch": {"image": image}}}},
        "config": config or {},
    }
    inner = base64.b64encode(gzip.compress(json.dumps(release).encode()))
    return {
        "metadata": meta(
            f"sh.helm.release.v1.k2s-dns.v{version}",
            labels={"owner": "helm", "name": "k2s-dns", "version": str(version)},
        ),
        "data": {"release": base64.b64encode(inner).decode()},
    }


def coredns_deployment() -> dict:
    labels = {"k8s-app": "kube-dns"}
    deploy = deployment(
        "coredns", "kube-system", labels, [{"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.12.1"}], 2
    )
    mount = EtcdClientMount(
        "etcd-client-for-core-dns",
        "etcd-ca",
        "coredns",
        ((ETCD_SERVICE_IP, ("k2s-dns-etcd.k2s-dns.svc.cluster.local",)),),
        5,
    )
    return add_etcd_client(deploy, mount)


def patched_corefile() -> str:
    settings = corefile.EtcdSettings("cluster.local", "/skydns", (ETCD_URL,), EtcdClientMount("c", "a").tls_files)
    return corefile.patch(KUBEADM_COREFILE, None, settings)


def etcd_records(host: str = HOST, address: str = ADDRESS) -> dict[str, str]:
    first, _, rest = host.partition(".")
    return {
        corefile_key(host) + "/1d2c3b4a": json.dumps({"host": address, "ttl": 5, "targetstrip": 1, "owner": "k2s-dns"}),
        corefile_key(f"a-{first}.{rest}") + "/5e6f7a8b": json.dumps(
            {
                "text": '"heritage=external-dns,external-dns/owner=k2s-dns,'
                f'external-dns/resource=ingress/apps/{first}"',
                "targetstrip": 1,
                "owner": "k2s-dns",
            }
        ),
    }


def corefile_key(name: str) -> str:
    return "/skydns/" + "/".join(reversed(name.split(".")))


def ingress(
    name: str, hosts: list[str], addresses: list[str] | None, annotations: dict | None = None, namespace: str = "apps"
) -> dict:
    return {
        "kind": "Ingress",
        "metadata": meta(name, namespace, annotations=annotations or {}),
        "spec": {"rules": [{"host": h} for h in hosts]},
        "status": {"loadBalancer": {"ingress": [{"ip": a} for a in addresses or []]}},
    }


def external_dns_log(errors: list[tuple[float, str]] = (), last_sync: float | None = 1.0) -> str:
    lines = [
        f'{ts(40)} time="x" level=info '
        f'msg="Add/set key /skydns/local/cluster/web/1d2c3b4a to Host={ADDRESS}, Text=, TTL=5"'
    ]
    for ago, msg in errors:
        lines.append(f'{ts(ago)} time="x" level=error msg="{msg}"')
    if last_sync is not None:
        lines.append(f'{ts(last_sync)} time="x" level=info msg="All records are already up to date"')
    lines.sort()
    return "\n".join(lines) + "\n"


def healthy() -> dict:
    """Every object and answer of a working installation, keyed the way FakeKube serves them."""
    desired_cm = {
        "metadata": meta("k2s-dns-coredns-desired", annotations={"k2s-dns.io/etcd-mode": "bundled"}),
        "data": {"desired.json": json.dumps(DESIRED, indent=2)},
    }
    status = {"phase": "Converged", "message": "CoreDNS matches the desired state", "zone": "cluster.local"}
    external_dns = deployment(
        "k2s-dns-external-dns",
        "k2s-dns",
        release_labels("external-dns"),
        [
            {
                "name": "external-dns",
                "image": "registry.k8s.io/external-dns/external-dns:v0.23.0",
                "args": list(EXTERNAL_DNS_ARGS),
            }
        ],
    )
    hook_image = "ghcr.io/k2s-dns/k2s-dns-hook:0.1.0"
    controller = deployment(
        "k2s-dns-controller", "k2s-dns", release_labels("controller"), [{"name": "controller", "image": hook_image}]
    )
    etcd = {
        "kind": "StatefulSet",
        "metadata": meta("k2s-dns-etcd", labels=release_labels("etcd")),
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": release_labels("etcd")},
                "spec": {"volumes": [{"name": "root", "secret": {"secretName": "k2s-dns-etcd-root"}}]},
            },
        },
        "status": {"replicas": 1, "readyReplicas": 1},
    }
    coredns_pods = [
        pod(
            f"coredns-7d8f9-{s}",
            "kube-system",
            {"k8s-app": "kube-dns"},
            {"coredns": "registry.k8s.io/coredns/coredns:v1.12.1"},
            ip,
        )
        for s, ip in zip(("abcde", "fghij"), COREDNS_IPS, strict=True)
    ]
    return {
        "configmaps": {
            ("k2s-dns", "k2s-dns-coredns-desired"): desired_cm,
            ("k2s-dns", "k2s-dns-controller-status"): {
                "metadata": meta("k2s-dns-controller-status"),
                "data": {"status.json": json.dumps(status)},
            },
            ("kube-system", "coredns"): {
                "metadata": meta("coredns", "kube-system"),
                "data": {"Corefile": patched_corefile()},
            },
        },
        "deployments": {
            ("k2s-dns", "k2s-dns-external-dns"): external_dns,
            ("k2s-dns", "k2s-dns-controller"): controller,
            ("kube-system", "coredns"): coredns_deployment(),
        },
        "statefulsets": {("k2s-dns", "k2s-dns-etcd"): etcd},
        "secrets": {
            ("k2s-dns", "k2s-dns-etcd-root"): {
                "metadata": meta("k2s-dns-etcd-root"),
                "data": {"password": base64.b64encode(b"s3cret").decode()},
            },
            ("kube-system", "etcd-client-for-core-dns"): {"metadata": meta("etcd-client-for-core-dns", "kube-system")},
            ("kube-system", "etcd-ca"): {"metadata": meta("etcd-ca", "kube-system")},
        },
        "helm": [helm_secret()],
        "services": {
            ("k2s-dns", "k2s-dns-etcd"): {
                "metadata": meta("k2s-dns-etcd"),
                "spec": {"type": "ClusterIP", "clusterIP": ETCD_SERVICE_IP},
            },
            ("kube-system", "kube-dns"): {
                "metadata": meta("kube-dns", "kube-system"),
                "spec": {"type": "ClusterIP", "clusterIP": DNS_SERVICE_IP, "selector": {"k8s-app": "kube-dns"}},
            },
        },
        "namespaces": {"k2s-dns": {}, "kube-system": {}, "apps": {}},
        "pods": {
            "k2s-dns": [
                pod(
                    "k2s-dns-etcd-0",
                    "k2s-dns",
                    release_labels("etcd"),
                    {"etcd": "registry.k8s.io/etcd:3.6.5-0", "auth": hook_image},
                    "10.244.0.7",
                ),
                pod(
                    "k2s-dns-controller-5c9d7-xk2lp",
                    "k2s-dns",
                    release_labels("controller"),
                    {"controller": hook_image},
                ),
                pod(
                    "k2s-dns-external-dns-6b8f4-q9rtz",
                    "k2s-dns",
                    release_labels("external-dns"),
                    {"external-dns": "registry.k8s.io/external-dns/external-dns:v0.23.0"},
                ),
            ],
            "kube-system": coredns_pods,
        },
        "ingresses": [ingress("web", [HOST], [ADDRESS])],
        "network_policies": {
            "k2s-dns": [etcd_network_policy()],
            "kube-system": [],
        },
        "custom": {},  # (group, plural) -> items; absent: the CRD is not installed
        "logs": {
            ("k2s-dns", "k2s-dns-external-dns-6b8f4-q9rtz"): external_dns_log(),
            **{("kube-system", p["metadata"]["name"]): "" for p in coredns_pods},
        },
        "etcd": etcd_records(),
        "dns": {ip: {"rcode": "NOERROR", "records": [ADDRESS]} for ip in (*COREDNS_IPS, DNS_SERVICE_IP)},
        "local": {"addresses": [], "error": "[Errno -2] Name or service not known"},
    }


def etcd_network_policy() -> dict:
    """The chart's etcd NetworkPolicy (templates/etcd-networkpolicy.yaml)."""
    return {
        "metadata": meta("k2s-dns-etcd"),
        "spec": {
            "podSelector": {
                "matchLabels": {k: v for k, v in release_labels("etcd").items() if k != "app.kubernetes.io/part-of"}
            },
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "ports": [{"port": 2379, "protocol": "TCP"}],
                    "from": [
                        {
                            "podSelector": {
                                "matchLabels": {
                                    "app.kubernetes.io/instance": "k2s-dns",
                                    "app.kubernetes.io/component": "external-dns",
                                }
                            }
                        },
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        },
                    ],
                },
                {
                    "ports": [{"port": 2380}, {"port": 2381}],
                    "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "etcd"}}}],
                },
            ],
        },
    }


def _matches(labels: dict, selector: str) -> bool:
    return all(labels.get(k) == v for k, _, v in (term.partition("=") for term in selector.split(",") if term))


class FakeKube:
    """cluster.Kube's methods over a scenario dict (healthy() and its edits); records every exec."""

    def __init__(self, state: dict):
        self.state = copy.deepcopy(state)
        self.execs: list[list[str]] = []
        self.forbidden: set[str] = set()  # method names that answer 403

    def _check(self, what: str) -> None:
        if what in self.forbidden:
            raise cluster.KubeError(403, f'{what} is forbidden: User "dev" cannot list resource')

    def configmap(self, ns, name):
        self._check("configmap")
        return copy.deepcopy(self.state["configmaps"].get((ns, name)))

    def secret(self, ns, name):
        self._check("secret")
        return copy.deepcopy(self.state["secrets"].get((ns, name)))

    def service(self, ns, name):
        return copy.deepcopy(self.state["services"].get((ns, name)))

    def namespace(self, name):
        if name not in self.state["namespaces"]:
            return None
        labels = {"kubernetes.io/metadata.name": name, **self.state["namespaces"][name]}
        return {"metadata": {"name": name, "labels": labels}}

    def deployment(self, ns, name):
        return copy.deepcopy(self.state["deployments"].get((ns, name)))

    def statefulset(self, ns, name):
        return copy.deepcopy(self.state["statefulsets"].get((ns, name)))

    def pods(self, ns, selector):
        self._check("pods")
        return [copy.deepcopy(p) for p in self.state["pods"].get(ns, []) if _matches(p["metadata"]["labels"], selector)]

    def secrets(self, ns, selector):
        self._check("secrets")
        return copy.deepcopy(self.state["helm"])

    def services(self, ns=None):
        return [copy.deepcopy(s) for (n, _), s in self.state["services"].items() if ns in (None, n)]

    def ingresses(self):
        self._check("ingresses")
        return copy.deepcopy(self.state["ingresses"])

    def network_policies(self, ns):
        return copy.deepcopy(self.state["network_policies"].get(ns, []))

    def custom_objects(self, group, plural):
        found = self.state["custom"].get((group, plural))
        return None if found is None else copy.deepcopy(found)

    def pod_log(self, ns, pod, container, since):
        return self.state["logs"].get((ns, pod), "")

    def exec(self, ns, pod, container, command, timeout=20):
        self.execs.append(command)
        if "etcd_error" in self.state:
            return 1, "", self.state["etcd_error"]
        prefix = command[command.index("--prefix") + 1]
        kvs = [
            {"key": base64.b64encode(k.encode()).decode(), "value": base64.b64encode(v.encode()).decode()}
            for k, v in sorted(self.state["etcd"].items())
            if k.startswith(prefix)
        ]
        return 0, json.dumps({"header": {}, "kvs": kvs, "count": len(kvs)}), ""


def fake_query(state: dict):
    """dnsquery.query over state["dns"]: {server: {rcode, records} | {error}}."""

    def query(server, name, rdtype="A", port=53, timeout=1.5):
        found = state["dns"].get(server) or state["dns"].get(f"{server}:{port}")
        if found is None or found.get("error"):
            return {"rcode": "", "records": [], "error": (found or {}).get("error") or "no answer within 1.5s"}
        records = [
            {"name": name, "type": rdtype if "." not in r or r.count(".") == 3 else "CNAME", "ttl": 5, "value": r}
            for r in found["records"]
        ]
        return {"rcode": found["rcode"], "records": records, "error": None}

    return query


def run(state: dict, host: str | None = HOST, **kwargs):
    from k2s_dns.doctor import run as doctor_run

    return doctor_run.run(
        FakeKube(state),
        NAMES,
        host,
        query=fake_query(state),
        lookup=lambda name, timeout=3.0: dict(state["local"]),
        now=lambda: NOW,
        platform=kwargs.pop("platform", "linux"),
        **kwargs,
    )


SCENARIOS = {}


def scenario(name: str):
    def register(fn):
        SCENARIOS[name] = fn
        return fn

    return register


@scenario("healthy")
def _healthy(state: dict) -> None:
    pass


@scenario("no-record")
def _no_record(state: dict) -> None:
    state["etcd"] = {k: v for k, v in state["etcd"].items() if "/web/" not in k}


@scenario("image")
def _image(state: dict) -> None:
    etcd = state["pods"]["k2s-dns"][0]
    etcd["spec"]["containers"][1]["image"] = "ghcr.io/k2s-dns/k2s-dns-hook:does-not-exist"
    etcd["status"]["conditions"][1]["status"] = "False"
    etcd["status"]["containerStatuses"][1]["state"] = {
        "waiting": {
            "reason": "ImagePullBackOff",
            "message": 'Back-off pulling image "ghcr.io/k2s-dns/k2s-dns-hook:does-not-exist"',
        }
    }


if __name__ == "__main__":
    from k2s_dns.doctor import report

    name = sys.argv[1] if len(sys.argv) > 1 else "healthy"
    state = healthy()
    SCENARIOS[name](state)
    print(report.table(run(state), width=110))
