"""The desired-state document the chart renders: every field checked, errors name the field."""

from __future__ import annotations

import json

import pytest

from k2s_dns.desired import Desired, DesiredError


def test_camel_case_fields_map_to_the_dataclass():
    d = Desired.from_json(
        json.dumps({"zone": "z", "path": "/p", "endpoints": ["https://e:2379"], "preStopSleep": 3, "hostAliases": []})
    )
    assert d.pre_stop_sleep == 3 and d.endpoints == ("https://e:2379",) and d.server_block == ""
    assert d.cache_zone is True  # a desired state from a chart before the switch: the default


def test_cache_zone_switch():
    doc = {"zone": "z", "path": "/p", "endpoints": ["x"], "cacheZone": False}
    assert Desired.from_json(json.dumps(doc)).cache_zone is False
    with pytest.raises(DesiredError, match="field 'cacheZone' must be bool"):
        Desired.from_json(json.dumps({**doc, "cacheZone": "false"}), "cm")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"path": "/p", "endpoints": ["x"]}, "field 'zone' is required"),
        ({"zone": "z", "path": "/p"}, "one of 'endpoints' or 'endpointsSecret' is required"),
        ({"zone": "z", "path": "/p", "endpoints": ["x"], "tls": "yes"}, "field 'tls' must be bool"),
        ({"zone": "z", "path": "/p", "endpoints": ["x"], "preStopSleep": True}, "field 'preStopSleep' must be int"),
        ({"zone": "z", "path": "/p", "endpoints": "x"}, "field 'endpoints' must be tuple"),
    ],
)
def test_bad_documents_name_the_field(doc, message):
    with pytest.raises(DesiredError, match=message):
        Desired.from_json(json.dumps(doc), "cm")


def test_not_json_is_reported_with_its_source():
    with pytest.raises(DesiredError, match=r"^cm: not JSON"):
        Desired.from_json("{", "cm")


def test_unknown_fields_from_a_newer_chart_are_ignored():
    assert Desired.from_json('{"zone": "z", "path": "/p", "endpoints": ["x"], "future": 1}').zone == "z"
