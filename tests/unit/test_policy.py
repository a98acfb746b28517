"""The publication policy (k2s_dns.policy) and its twin in CEL, the chart's ValidatingAdmissionPolicy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from k2s_dns.policy import refusal

D = "cluster.local"


@pytest.mark.parametrize(
    ("host", "namespace", "trusted", "allowed"),
    [
        ("web.tenant.cluster.local", "tenant", False, True),
        ("a.b.web.tenant.cluster.local", "tenant", False, True),
        ("Web.Tenant.Cluster.Local.", "tenant", False, True),
        ("*.tenant.cluster.local", "tenant", False, True),
        ("tenant.cluster.local", "tenant", False, False),  # the namespace's own label: a pod's `tenant` lookup
        ("github.com.cluster.local", "tenant", False, False),  # a pod's `github.com` lookup
        ("db.prod.victim.svc.cluster.local", "tenant", False, False),
        ("db.prod.victim.svc.cluster.local", "tenant", True, False),
        ("x.pod.cluster.local", "pod", False, False),
        ("wpad.cluster.local", "tenant", False, False),
        ("wpad.cluster.local", "k2s", True, True),
        ("k2s.cluster.local", "dashboard", True, True),
        ("cluster.local", "tenant", True, False),
        ("ns.dns.cluster.local", "dns", True, False),
        ("dns-version.cluster.local", "x", True, False),
        ("x.ns.dns.cluster.local", "dns", False, True),
        ("app.tenant.example.test", "other", False, True),  # outside the cluster domain: the zone owner's
        ("xcluster.local", "tenant", False, True),
        ("db.prod.svc.cluster.local.cluster.local", "local", True, False),  # a search-list expansion
        ("x.cluster.local.cluster.local", "local", False, False),
    ],
)
def test_rule(host, namespace, trusted, allowed):
    assert (refusal(host, namespace, D, trusted) is None) is allowed


def test_refusals_say_what_to_use():
    assert refusal("github.com.cluster.local", "tenant", D) == (
        "inside the cluster domain cluster.local, namespace tenant may publish only names under "
        "tenant.cluster.local (e.g. app.tenant.cluster.local); github.com.cluster.local is not one"
    )
    assert "never published" in refusal("db.prod.svc.cluster.local", "prod", D)


LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@given(st.lists(LABEL, min_size=1, max_size=4), LABEL)
def test_anything_under_the_own_namespace_is_allowed_unless_kubernetes_answers_it(labels, namespace):
    host = ".".join([*labels, namespace, D])
    blocked = (
        namespace in ("svc", "pod")
        or (namespace == "dns" and labels == ["ns"])
        or (namespace == "local" and labels[-1] == "cluster")  # <x>.cluster.local.cluster.local
    )
    assert (refusal(host, namespace, D) is None) is not blocked


@given(st.lists(LABEL, min_size=0, max_size=4), LABEL)
def test_a_pod_search_list_candidate_of_another_namespace_is_never_allowed(labels, namespace):
    # `<name>.<ns>.svc.<domain>` and `<name>.svc.<domain>`: the first two candidates of every lookup.
    for host in (".".join([*labels, namespace, "svc", D]), ".".join([*labels, "svc", D])):
        assert refusal(host, "tenant", D, trusted=True) is not None


def test_violations_read_rules_tls_hosts_and_both_annotation_prefixes():
    from k2s_dns.policy import violations

    ingress = {
        "metadata": {
            "namespace": "tenant",
            "name": "x",
            "annotations": {
                "external-dns.alpha.kubernetes.io/hostname": "wpad.cluster.local., ok.tenant.cluster.local",
                "external-dns.kubernetes.io/hostname": "proxy.cluster.local",
            },
        },
        "spec": {"rules": [{"host": "a.tenant.cluster.local"}, {}], "tls": [{"hosts": ["tls.cluster.local"]}]},
    }
    service = {"metadata": {"namespace": "svc-ns", "name": "lb", "annotations": {}}, "spec": {}}
    found = violations([("Ingress", ingress), ("Service", service)], {}, "cluster.local")
    assert [str(v) for v in found] == [
        "Ingress tenant/x: tls.cluster.local",
        "Ingress tenant/x: proxy.cluster.local",
        "Ingress tenant/x: wpad.cluster.local",
    ]
    assert violations([("Ingress", ingress)], {"tenant": {"t": "true"}}, "cluster.local", trusted_label="t") == []
