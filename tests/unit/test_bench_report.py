"""The bench's pure parts, no cluster: dnsperf output parsing, the report tables (chart vs peer included),
the Corefile cache-state check the throughput rows wait on, and the peer's manifests."""

from __future__ import annotations

import dataclasses

import pytest
from bench import measure, peer, report

from k2s_dns import corefile
from k2s_dns.corefile import EtcdSettings
from tests.conftest import REPO

DNSPERF_OUT = """\
DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 30053 -d q.txt -l 10 -c 4 -Q 30000 -S 0
[Status] Sending queries (to 127.0.0.1:30053)
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         60000
  Queries completed:    59990 (99.98%)
  Queries lost:         10 (0.02%)

  Response codes:       NOERROR 59980 (99.98%), SERVFAIL 10 (0.02%)
  Average packet size:  request 32, response 62
  Run time (s):         2.000211
  Queries per second:   29996.835334

  Average Latency (s):  0.000562 (min 0.000019, max 0.011161)
  Latency StdDev (s):   0.001034
"""


def test_parse_dnsperf():
    row = measure.parse_dnsperf(DNSPERF_OUT)
    assert row["qps"] == pytest.approx(29996.835334)
    assert row["lost"] == 10
    assert row["rcodes"] == {"NOERROR": 59980, "SERVFAIL": 10}
    assert row["avg_latency_ms"] == pytest.approx(0.562)
    assert row["max_latency_ms"] == pytest.approx(11.161)


def test_parse_dnsperf_without_output():
    # dnsperf missing from the output (killed, timed out): no figures, no exception.
    assert measure.parse_dnsperf("") == {
        "qps": None,
        "rcodes": {},
        "lost": None,
        "avg_latency_ms": 0,
        "max_latency_ms": 0,
    }


def latency(p50: float, p95: float, n: int = 20) -> dict:
    return {"n": n, "p50": p50, "p95": p95, "max": p95 + 0.1}


def perf(qps: float, avg: float) -> dict:
    return {"qps": qps, "lost": 0.0, "avg_latency_ms": avg, "max_latency_ms": avg * 10, "rcodes": {"NOERROR": 1}}


LOAD = {"clients": 4, "max_qps": 30000, "seconds": 10}


def sample_results(**extra) -> dict:
    chart = {
        "create_fresh": {**latency(0.9, 1.9), "samples": [0.5, 0.9, 1.9]},
        "create_after_nxdomain": {**latency(0.95, 1.95), "samples": [0.6, 0.95, 1.95]},
        "update": latency(1.1, 2.0),
        "delete": latency(0.9, 2.05),
        "bulk": {"count": 100, "create_seconds": 3.5, "resolved": 100, "all_resolved_seconds": 6.2, "curve": [1.0]},
    }
    return {
        "scale": "small",
        "samples": 20,
        "bulk": 100,
        "configs": {"chart defaults": chart},
        "throughput": {
            report.ROW_SERVICE: perf(19869.4, 4.2),
            report.ROW_ETCD_CACHED: perf(19803.2, 4.1),
            report.ROW_ETCD_UNCACHED: perf(5409.0, 18.3),
        },
        "dnsperf_load": LOAD,
        **extra,
    }


PEER = {
    "name": "k8s_gateway",
    "version": "v1.6.0",
    "path": "NodePort 30054 on loopback",
    "replicas": 1,
    "create_fresh": {**latency(0.001, 0.004), "samples": [0.001, 0.004]},
    "update": latency(0.002, 0.005),
    "delete": latency(0.001, 0.003),
    "throughput": perf(29950.2, 0.9),
    "dnsperf_load": LOAD,
}


def table_rows(text: str, header_start: str) -> list[list[str]]:
    """The cells of the markdown table whose header row starts with header_start (separator row dropped)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header_start}"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_throughput_rows_side_by_side_with_their_load():
    text = report.markdown(sample_results())
    rows = table_rows(text, "CoreDNS under dnsperf (4 clients, at most 30000 qps, 10 s)")
    assert [r[:4] for r in rows] == [
        [report.ROW_SERVICE, "19869", "-", "4.2"],
        [report.ROW_ETCD_CACHED, "19803", "-", "4.1"],
        [report.ROW_ETCD_UNCACHED, "5409", "-", "18.3"],
    ]


def test_search_list_misses_relative_to_the_service_name_of_their_phase():
    service = {"qps": 8000.0}
    assert measure.relative({"qps": 7400.0}, service)["vs_service_pct"] == 92
    assert "vs_service_pct" not in measure.relative({"qps": None}, service)
    names = measure.search_list_misses(2)
    assert names == [
        "www0.example.com.default.svc.cluster.local",
        "www0.example.com.svc.cluster.local",
        "www0.example.com.cluster.local",
        "www1.example.com.default.svc.cluster.local",
        "www1.example.com.svc.cluster.local",
        "www1.example.com.cluster.local",
    ]


def test_chart_vs_peer_table():
    text = report.markdown(sample_results(peer=PEER))
    rows = table_rows(text, "chart vs nearest peer")
    assert rows == [
        ["create -> resolvable, p50 / p95 s", "0.9 / 1.9", "0.001 / 0.004"],
        ["address change -> new answer, p50 / p95 s", "1.1 / 2.0", "0.002 / 0.005"],
        ["delete -> NXDOMAIN, p50 / p95 s", "0.9 / 2.05", "0.001 / 0.003"],
        ["dnsperf, one Ingress name: qps", "19803", "29950"],
        ["dnsperf, one Ingress name: avg latency ms", "4.1", "0.9"],
    ]
    assert "| k8s_gateway v1.6.0 |" in text
    assert "dnsperf load: 4 clients, at most 30000 qps, 10 s. The peer is asked directly (NodePort 30054" in text


def test_peer_table_says_when_the_loads_differ():
    old_chart_load = {"clients": 4, "max_qps": 5000, "seconds": 10}
    text = report.markdown(sample_results(peer=PEER, dnsperf_load=old_chart_load))
    assert "chart 4 clients, at most 5000 qps, 10 s, peer 4 clients, at most 30000 qps, 10 s" in text


def test_peer_without_dnsperf_and_results_from_before_the_cache_rows():
    legacy = sample_results(peer={**PEER, "throughput": {"skipped": "dnsperf not installed"}})
    legacy["throughput"] = {"etcd name": perf(2945.0, 33.7), "Service name": perf(4999.0, 2.9)}
    del legacy["dnsperf_load"]
    text = report.markdown(legacy)
    rows = dict((r[0], r[1:]) for r in table_rows(text, "chart vs nearest peer"))
    assert rows["dnsperf, one Ingress name: qps"] == ["2945", "-"]
    assert rows["dnsperf, one Ingress name: avg latency ms"] == ["33.7", "-"]
    assert "| CoreDNS under dnsperf | qps |" in text


def test_no_peer_table_without_peer_results():
    text = report.markdown(sample_results())
    assert "nearest peer" not in text
    # --only peer on a fresh results directory: only the peer's table.
    only_peer = {"scale": "small", "samples": 20, "bulk": 100, "configs": {}, "peer": PEER}
    rows = table_rows(report.markdown(only_peer), "chart vs nearest peer")
    assert rows[0] == ["create -> resolvable, p50 / p95 s", "-", "0.001 / 0.004"]
    assert rows[3] == ["dnsperf, one Ingress name: qps", "-", "29950"]


def test_plots_include_the_peer(tmp_path):
    # matplotlib comes with the venv (.[bench]); without it the plots would silently be missing.
    report.plots(sample_results(peer=PEER), tmp_path)
    assert (tmp_path / "latency-cdf.png").stat().st_size > 0


def test_cache_zone_state_follows_the_patcher():
    original = (REPO / "tests/unit/corefiles/kubeadm-1.34.Corefile").read_text()
    settings = EtcdSettings("cluster.local", "/skydns", ("https://k2s-dns-etcd.k2s-dns:2379",))
    assert measure.cache_zone_state(original) is None
    assert measure.cache_zone_state(corefile.patch(original, None, settings)) is True
    off = dataclasses.replace(settings, cache=False)
    assert measure.cache_zone_state(corefile.patch(original, None, off)) is False


def test_peer_manifests():
    objects = {o["kind"]: o for o in peer.manifests("ghcr.io/k8s-gateway/k8s_gateway:v1.6.0")}
    rules = objects["ClusterRole"]["rules"]
    ingresses = next(r for r in rules if "ingresses" in r["resources"])
    assert set(ingresses["verbs"]) == {"list", "watch"} and "networking.k8s.io" in ingresses["apiGroups"]
    assert any("customresourcedefinitions" in r["resources"] and "get" in r["verbs"] for r in rules)
    assert objects["ClusterRoleBinding"]["subjects"][0]["name"] == objects["ServiceAccount"]["metadata"]["name"]
    corefile_text = objects["ConfigMap"]["data"]["Corefile"]
    assert "k8s_gateway cluster.local {" in corefile_text and f".:{peer.PORT} {{" in corefile_text
    assert f"ttl {peer.RECORD_TTL}" in corefile_text
    ports = objects["Service"]["spec"]["ports"]
    assert {(p["protocol"], p["nodePort"], p["targetPort"]) for p in ports} == {
        ("UDP", peer.NODEPORT, peer.PORT),
        ("TCP", peer.NODEPORT, peer.PORT),
    }
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith(":v1.6.0") and container["securityContext"]["runAsNonRoot"] is True


def test_peer_nodeport_is_mapped_to_loopback_by_the_kind_config():
    import yaml

    config = yaml.safe_load((REPO / "tests/cluster/kind-config.yaml").read_text())
    mappings = config["nodes"][0]["extraPortMappings"]
    mapped = {(m["containerPort"], m["protocol"]) for m in mappings if m.get("listenAddress") == "127.0.0.1"}
    assert {(peer.NODEPORT, "UDP"), (peer.NODEPORT, "TCP")} <= mapped


def test_peer_image_is_the_one_the_build_script_makes():
    assert peer.version().startswith("v")
    assert peer.image() == f"ghcr.io/k8s-gateway/k8s_gateway:{peer.version()}"
    script = (REPO / "images/k8s-gateway/build.sh").read_text()
    assert "version=$K8S_GATEWAY_VERSION" in script
    assert 'ref="ghcr.io/k8s-gateway/k8s_gateway:$version"' in script
    assert "GONOSUMDB=$module" in script


def test_peer_is_a_section():
    from bench import __main__ as bench_main

    assert "peer" in bench_main.SECTIONS
    assert bench_main.parser().parse_args(["--only", "peer"]).only == ["peer"]


def test_rollback_table_only_when_measured():
    results = sample_results()
    assert "helm rollback across" not in report.markdown(results)
    results["rollback"] = {
        "corefile": {"n": 5, "p50": 0.41, "p95": 0.9, "max": 0.9},
        "answered": {"n": 5, "p50": 12.3, "p95": 15.1, "max": 15.1},
    }
    rows = table_rows(report.markdown(results), "helm rollback across an etcd.prefix change")
    assert rows == [
        ["-> controller wrote the old prefix into the Corefile", "5", "0.41", "0.9", "0.9"],
        ["-> rollout done, etcd name answers", "5", "12.3", "15.1", "15.1"],
    ]
