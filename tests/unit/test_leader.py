"""Leader election on the chart's Lease."""

from __future__ import annotations

import datetime as dt

from k2s_dns import kube, leader

NOW = dt.datetime(2026, 11, 25, 8, 0, 0, tzinfo=dt.UTC)


def lease(holder: str | None, renewed: dt.datetime | None) -> dict:
    spec = {"leaseDurationSeconds": 15}
    if holder:
        spec["holderIdentity"] = holder
    if renewed:
        spec["renewTime"] = renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"metadata": {"name": "l", "resourceVersion": "1"}, "spec": spec}


def test_free_lease_is_taken():
    updated = leader.lease_update(lease(None, None), "a", 15, NOW)
    assert updated["spec"]["holderIdentity"] == "a" and updated["spec"]["leaseTransitions"] == 0


def test_another_holders_live_term_is_respected():
    assert leader.lease_update(lease("b", NOW - dt.timedelta(seconds=5)), "a", 15, NOW) is None


def test_expired_term_is_taken_over_and_counted():
    updated = leader.lease_update(lease("b", NOW - dt.timedelta(seconds=20)), "a", 15, NOW)
    assert updated["spec"]["holderIdentity"] == "a" and updated["spec"]["leaseTransitions"] == 1


def test_own_lease_is_renewed_without_a_transition():
    updated = leader.lease_update(lease("a", NOW - dt.timedelta(seconds=5)), "a", 15, NOW)
    assert updated["spec"]["renewTime"].startswith("2026-11-25T08:00:00") and "leaseTransitions" not in updated["spec"]


class Store:
    def __init__(self, obj: dict):
        self.obj = obj

    def get(self, path: str) -> dict:
        return dict(self.obj)

    def put(self, path: str, body: dict) -> dict:
        if body["metadata"]["resourceVersion"] != self.obj["metadata"]["resourceVersion"]:
            raise kube.ApiError(409, "conflict")
        self.obj = {**body, "metadata": {**body["metadata"], "resourceVersion": "2"}}
        return self.obj


def test_elector_acquires_and_releases():
    store = Store(lease(None, None))
    elector = leader.Elector(store, "/lease", "a")
    assert elector.acquire_or_renew()
    assert leader.Elector(store, "/lease", "b").acquire_or_renew() is False
    elector.release()
    assert store.obj["spec"]["holderIdentity"] is None
    assert leader.Elector(store, "/lease", "b").acquire_or_renew()
