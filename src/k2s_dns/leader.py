"""Leader election on a Lease the chart creates (so the controller needs only get/update on it, by name).

Only the leader writes to CoreDNS; the others wait, ready to take over when the
leader stops renewing for `duration` seconds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from . import kube
from .converge import Objects


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _micro_time(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def lease_update(lease: dict, identity: str, duration: int, now: dt.datetime) -> dict | None:
    """The Lease with `identity` holding it, or None when another holder's term has not expired."""
    spec = dict(lease.get("spec") or {})
    holder = spec.get("holderIdentity")
    renewed = _parse(spec.get("renewTime"))
    term = dt.timedelta(seconds=spec.get("leaseDurationSeconds") or duration)
    if holder and holder != identity and renewed is not None and now - renewed <= term:
        return None
    if holder != identity:
        spec["acquireTime"] = _micro_time(now)
        spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
    spec.update(holderIdentity=identity, renewTime=_micro_time(now), leaseDurationSeconds=duration)
    return {**lease, "spec": spec}


@dataclass
class Elector:
    api: Objects
    path: str
    identity: str
    duration: int = 15

    def acquire_or_renew(self) -> bool:
        """One attempt; True while this process holds the Lease."""
        try:
            updated = lease_update(self.api.get(self.path), self.identity, self.duration, _now())
            if updated is None:
                return False
            self.api.put(self.path, updated)
            return True
        except kube.ApiError as err:
            if err.status == 409:  # someone else renewed or took it in between
                return False
            raise

    def release(self) -> None:
        """Give the Lease up at shutdown so a standby takes over at once, not after `duration`."""
        try:
            lease = self.api.get(self.path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") == self.identity:
                spec = {**spec, "holderIdentity": None, "renewTime": None}
                self.api.put(self.path, {**lease, "spec": spec})
        except kube.ApiError:
            pass  # it expires by itself
