"""values.schema.json rejects bad values with a message naming the field."""

from __future__ import annotations

import pytest

CASES = {
    "zone-with-underscore": ({"zone": "Bad_Zone"}, "/zone"),
    "empty-zone": ({"zone": ""}, "/zone"),
    "unknown-mode": ({"etcd": {"mode": "embedded"}}, "/etcd/mode"),
    "prefix-without-slash": ({"etcd": {"prefix": "skydns"}}, "/etcd/prefix"),
    "prefix-trailing-slash": ({"etcd": {"prefix": "/skydns/"}}, "/etcd/prefix"),
    "tls-not-bool": ({"etcd": {"tls": "yes"}}, "/etcd/tls"),
    "even-replicas": (
        {"etcd": {"bundled": {"replicas": 2, "persistence": {"enabled": True}}}},
        "/etcd/bundled/replicas",
    ),
    "zero-replicas": ({"etcd": {"bundled": {"replicas": 0}}}, "/etcd/bundled/replicas"),
    "three-replicas-without-persistence": ({"etcd": {"bundled": {"replicas": 3}}}, "/etcd/bundled/persistence/enabled"),
    "external-without-endpoints": ({"etcd": {"mode": "external"}}, "/etcd/external/endpoints"),
    "endpoint-without-scheme": (
        {"etcd": {"mode": "external", "external": {"endpoints": ["10.0.0.1:2379"]}}},
        "/etcd/external/endpoints/0",
    ),
    "interval-not-a-duration": ({"externalDNS": {"interval": "60"}}, "/externalDNS/interval"),
    "event-interval-not-a-duration": (
        {"externalDNS": {"minEventSyncInterval": "soon"}},
        "/externalDNS/minEventSyncInterval",
    ),
    "unknown-source": ({"externalDNS": {"sources": ["istio-gateway"]}}, "/externalDNS/sources/0"),
    "tcproute-source": ({"externalDNS": {"sources": ["ingress", "gateway-tcproute"]}}, "/externalDNS/sources/1"),
    "duplicate-source": ({"externalDNS": {"sources": ["crd", "crd"]}}, "/externalDNS/sources"),
    "unknown-service-type": ({"externalDNS": {"serviceTypes": ["Headless"]}}, "/externalDNS/serviceTypes/0"),
    "unmanageable-record-type": ({"externalDNS": {"managedRecordTypes": ["MX"]}}, "/externalDNS/managedRecordTypes/0"),
    "annotation-prefix-without-slash": (
        {"externalDNS": {"annotationPrefix": "external-dns.kubernetes.io"}},
        "/externalDNS/annotationPrefix",
    ),
    "legacy-prefix-not-bool": (
        {"externalDNS": {"legacyAnnotationPrefix": "yes"}},
        "/externalDNS/legacyAnnotationPrefix",
    ),
    "no-source": ({"externalDNS": {"sources": []}}, "/externalDNS/sources"),
    "unknown-policy": ({"externalDNS": {"policy": "delete-all"}}, "/externalDNS/policy"),
    "rollout-timeout-too-short": ({"coredns": {"rolloutTimeout": 1}}, "/coredns/rolloutTimeout"),
    "pull-policy": ({"externalDNS": {"image": {"pullPolicy": "Sometimes"}}}, "/externalDNS/image/pullPolicy"),
    "typo-in-key": ({"etcd": {"mod": "bundled"}}, "additional properties 'mod' not allowed"),
    "cluster-existing-secret-without-endpoints": (
        {"etcd": {"mode": "cluster", "cluster": {"existingSecret": "mine"}}},
        "/etcd/cluster/endpoints",
    ),
    "cluster-endpoint-plain-http": (
        {"etcd": {"mode": "cluster", "cluster": {"endpoints": ["http://10.0.0.1:2379"]}}},
        "/etcd/cluster/endpoints/0",
    ),
    "size-not-a-quantity": ({"etcd": {"bundled": {"persistence": {"size": "lots"}}}}, "/etcd/bundled/persistence/size"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_values_are_rejected_naming_the_field(case, render_error):
    values, field = CASES[case]
    message = render_error(values)
    assert "values don't meet the specifications of the schema" in message
    assert field in message, message


def test_valid_alternatives_are_accepted(render):
    render({"zone": "apps.example.", "etcd": {"prefix": "/k2s/records"}, "externalDNS": {"interval": "1h30m"}})
