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
    "negative-record-ttl": ({"externalDNS": {"recordTTL": -5}}, "/externalDNS/recordTTL"),
    "record-ttl-as-duration": ({"externalDNS": {"recordTTL": "5s"}}, "/externalDNS/recordTTL"),
    "cache-zone-not-bool": ({"coredns": {"patch": {"cacheZone": "yes"}}}, "/coredns/patch/cacheZone"),
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
    "adopt-not-bool": ({"etcd": {"adoptExistingSecrets": "yes"}}, "/etcd/adoptExistingSecrets"),
    "existing-secret-bad-name": (
        {"etcd": {"bundled": {"existingSecrets": {"rootPassword": "Bad_Name"}}}},
        "/etcd/bundled/existingSecrets/rootPassword",
    ),
}


def external(endpoints: list[str], **secrets: str) -> dict:
    return {"etcd": {"mode": "external", "external": {"endpoints": endpoints, **secrets}}}


# External mode has one TLS rule, for ExternalDNS and CoreDNS alike: TLS exactly when the endpoints are
# https://. Each incomplete combination is rejected with the field and what it must be.
TLS_RULE = {
    "https-without-secrets": (
        external(["https://10.0.0.1:2379"]),
        [
            "at '/etcd/external/caSecret': minLength: got 0, want 1",
            "at '/etcd/external/clientSecret': minLength: got 0, want 1",
        ],
    ),
    "https-without-ca": (
        external(["https://10.0.0.1:2379"], clientSecret="client"),
        ["at '/etcd/external/caSecret': minLength: got 0, want 1"],
    ),
    "https-without-client-certificate": (
        external(["https://10.0.0.1:2379"], caSecret="ca"),
        ["at '/etcd/external/clientSecret': minLength: got 0, want 1"],
    ),
    "http-with-ca": (
        external(["http://10.0.0.1:2379"], caSecret="ca"),
        ["at '/etcd/external/caSecret': maxLength: got 2, want 0"],
    ),
    "http-with-client-certificate": (
        external(["http://10.0.0.1:2379"], clientSecret="client"),
        ["at '/etcd/external/clientSecret': maxLength: got 6, want 0"],
    ),
    "mixed-schemes": (
        external(["https://10.0.0.1:2379", "http://10.0.0.2:2379"], caSecret="ca", clientSecret="client"),
        ["at '/etcd/external/endpoints/1': 'http://10.0.0.2:2379' does not match pattern '^https://'"],
    ),
    # GitOps: the three certificate Secrets come from one CA, so all three or none.
    "partial-existing-certificates": (
        {"etcd": {"bundled": {"existingSecrets": {"peer": "my-etcd-peer"}}}},
        [
            "at '/etcd/bundled/existingSecrets/server': minLength: got 0, want 1",
            "at '/etcd/bundled/existingSecrets/externalDNS': minLength: got 0, want 1",
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(TLS_RULE))
def test_each_incomplete_combination_is_rejected_with_its_message(case, render_error):
    values, messages = TLS_RULE[case]
    message = render_error(values)
    assert "values don't meet the specifications of the schema" in message
    for expected in messages:
        assert expected in message, message


@pytest.mark.parametrize(
    "values",
    [
        external(["https://10.0.0.1:2379", "https://10.0.0.2:2379"], caSecret="ca", clientSecret="client"),
        external(["http://10.0.0.1:2379"]),
        {"etcd": {"bundled": {"existingSecrets": {"server": "s", "peer": "p", "externalDNS": "e"}}}},
        {"etcd": {"bundled": {"existingSecrets": {"rootPassword": "r"}}}},
    ],
    ids=["https-complete", "http-plain", "existing-certificates", "existing-password-only"],
)
def test_complete_combinations_are_accepted(values, render):
    render(values)


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_values_are_rejected_naming_the_field(case, render_error):
    values, field = CASES[case]
    message = render_error(values)
    assert "values don't meet the specifications of the schema" in message
    assert field in message, message


def test_valid_alternatives_are_accepted(render):
    render({"zone": "apps.example.", "etcd": {"prefix": "/k2s/records"}, "externalDNS": {"interval": "1h30m"}})
