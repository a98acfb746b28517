"""Bundled-etcd authentication: converges users, roles and permissions, idempotently."""

from __future__ import annotations

import base64
import urllib.error

import pytest

from k2s_dns import etcd_auth
from k2s_dns.etcd_gateway import GatewayError


class FakeEtcd:
    """etcd's auth API as the JSON gateway exposes it, with its rules (root first, token once enabled)."""

    endpoint = "https://etcd:2379"

    def __init__(self, root_password: str = "s3cret"):
        self.enabled = False
        self.users: dict[str, dict] = {}
        self.roles: dict[str, list[dict]] = {"root": []}
        self.password = root_password
        self.token: str | None = None
        self.writes: list[str] = []

    def authenticate(self, name, password):
        if name != "root" or password != self.password:
            raise GatewayError(400, "authentication failed, invalid user ID or password")
        self.token = "tok"

    def call(self, path, body=None):
        body = body or {}
        if path == "/v3/auth/status":
            return {"enabled": self.enabled} if self.enabled else {}
        if self.enabled and self.token != "tok":
            raise GatewayError(400, "user name is empty")
        if not path.endswith(("/list", "/get")):
            self.writes.append(path)
        if path == "/v3/auth/user/list":
            return {"users": sorted(self.users)}
        if path == "/v3/auth/role/list":
            return {"roles": sorted(self.roles)}
        if path == "/v3/auth/user/add":
            assert body["name"] not in self.users
            assert "password" in body or body["options"]["no_password"]
            self.users[body["name"]] = {"roles": []}
            if body["name"] == "root":
                self.password = body["password"]
            return {}
        if path == "/v3/auth/user/changepw":
            self.password = body["password"]
            return {}
        if path == "/v3/auth/user/get":
            return {"roles": self.users[body["name"]]["roles"]} if self.users[body["name"]]["roles"] else {}
        if path == "/v3/auth/user/grant":
            self.users[body["user"]]["roles"].append(body["role"])
            return {}
        if path == "/v3/auth/role/add":
            assert body["name"] not in self.roles
            self.roles[body["name"]] = []
            return {}
        if path == "/v3/auth/role/get":
            perms = [
                {k: v for k, v in p.items() if not (k == "permType" and v == "READ")} for p in self.roles[body["role"]]
            ]
            return {"perm": perms} if perms else {}
        if path == "/v3/auth/role/grant":
            self.roles[body["name"]].append(body["perm"])
            return {}
        if path == "/v3/auth/role/revoke":
            self.roles[body["role"]] = [p for p in self.roles[body["role"]] if p["key"] != body["key"]]
            return {}
        if path == "/v3/auth/enable":
            assert "root" in self.users and "root" in self.users["root"]["roles"], "etcd refuses: root user missing"
            self.enabled = True
            return {}
        raise AssertionError(path)


def keys(perm: dict) -> tuple[str, str]:
    return base64.b64decode(perm["key"]).decode(), base64.b64decode(perm["range_end"]).decode()


def converge(etcd: FakeEtcd, prefix: str = "/skydns", password: str = "s3cret") -> list[str]:
    return etcd_auth.converge(etcd, prefix, "k2s-dns-external-dns", "k2s-dns-coredns", password)


def test_first_run_sets_up_least_privilege_and_enables_auth():
    etcd = FakeEtcd()
    changed = converge(etcd)
    assert etcd.enabled and changed[-1] == "authentication on"
    assert etcd.users["k2s-dns-external-dns"]["roles"] == ["k2s-dns-external-dns-prefix"]
    assert etcd.users["k2s-dns-coredns"]["roles"] == ["k2s-dns-coredns-prefix"]
    (writer,) = etcd.roles["k2s-dns-external-dns-prefix"]
    (reader,) = etcd.roles["k2s-dns-coredns-prefix"]
    assert (writer["permType"], keys(writer)) == ("READWRITE", ("/skydns", "/skydnt"))
    assert (reader["permType"], keys(reader)) == ("READ", ("/skydns", "/skydnt"))


def test_second_run_changes_nothing():
    etcd = FakeEtcd()
    converge(etcd)
    etcd.writes.clear()
    assert converge(etcd) == []
    assert etcd.writes == []


def test_changed_prefix_replaces_the_permission():
    etcd = FakeEtcd()
    converge(etcd)
    changed = converge(etcd, prefix="/dns/")
    assert "revoked '/skydns' from k2s-dns-coredns-prefix" in changed
    assert [keys(p) for p in etcd.roles["k2s-dns-coredns-prefix"]] == [("/dns", "/dnt")]


def test_wrong_root_password_names_the_cause():
    etcd = FakeEtcd()
    converge(etcd)
    etcd.token = None
    with pytest.raises(GatewayError, match=r"cannot log in as root.*password Secret"):
        converge(etcd, password="other")


def test_interrupted_run_resets_the_root_password():
    etcd = FakeEtcd()
    etcd.call("/v3/auth/user/add", {"name": "root", "password": "old"})
    converge(etcd, password="new")
    assert etcd.enabled and etcd.password == "new"


def test_unreachable_etcd_is_retried_until_the_deadline():
    now = [0.0]
    attempts = []

    def step(_):
        attempts.append(now[0])
        raise urllib.error.URLError("connection refused")

    with pytest.raises(TimeoutError, match="not reachable after 10s"):
        etcd_auth.converge_with_retry(
            FakeEtcd(), 10, step, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
        )
    assert len(attempts) == 6


def test_a_refusal_is_final(tmp_path):
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    etcd = FakeEtcd()
    converge(etcd)
    etcd.token = None
    etcd.password = "rotated"
    args = ["--endpoint=https://etcd:2379", "--writer=w", "--reader=r", f"--root-password-file={password}"]
    assert etcd_auth.main(args, etcd=etcd) == 1
    etcd.password = "s3cret"
    assert etcd_auth.main(args, etcd=etcd) == 0


def test_sidecar_mode_repairs_an_etcd_that_lost_its_auth(tmp_path, capsys):
    password = tmp_path / "password"
    password.write_text("s3cret")
    etcd = FakeEtcd()
    runs = []

    def sleep(seconds):
        runs.append(seconds)
        if len(runs) == 1:
            etcd.__init__()  # the pod was replaced: a fresh, empty etcd
        if len(runs) == 3:
            raise StopIteration

    args = ["--endpoint=https://127.0.0.1:2379", "--writer=w", "--reader=r", f"--root-password-file={password}"]
    with pytest.raises(StopIteration):
        etcd_auth.main([*args, "--interval=300"], etcd=etcd, sleep=sleep)
    assert runs == [300, 300, 300]
    assert etcd.enabled and set(etcd.users) == {"root", "w", "r"}
    assert capsys.readouterr().out.count("authentication on") == 2
