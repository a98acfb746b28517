"""ExternalDNS's wait-for-etcd init container: what counts as ready, what it says while it waits."""

from __future__ import annotations

import ssl
import urllib.error

import pytest

from k2s_dns import etcd_wait
from k2s_dns.etcd_wait import READY, probe, settings_from_env, verdict, wait

TLS_ENV = {
    "ETCD_URLS": "https://a:2379, https://b:2379/",
    "ETCD_CA_FILE": "/etc/k2s-dns/etcd-ca/ca.crt",
    "ETCD_CERT_FILE": "/etc/k2s-dns/etcd-client/tls.crt",
    "ETCD_KEY_FILE": "/etc/k2s-dns/etcd-client/tls.key",
}


def test_settings_are_externaldns_own_environment():
    s = settings_from_env(TLS_ENV)
    assert s.endpoints == ["https://a:2379", "https://b:2379"]
    assert str(s.cert).endswith("tls.crt") and str(s.key).endswith("tls.key") and str(s.ca).endswith("ca.crt")
    plain = settings_from_env({"ETCD_URLS": "http://10.0.0.5:2379"})
    assert plain.ca is None and plain.cert is None


@pytest.mark.parametrize(
    ("env", "message"),
    [({}, "ETCD_URLS is empty"), ({"ETCD_URLS": "a:2379"}, "ETCD_URLS: a:2379 must start with http://")],
)
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(ValueError, match=message):
        settings_from_env(env)


@pytest.mark.parametrize(
    ("path", "status", "body", "ready"),
    [
        ("/readyz", 200, "ok", True),
        ("/readyz", 503, "[-]linearizable_read failed: etcdserver: leader changed", False),
        ("/health", 200, '{"health":"true","reason":""}', True),
        ("/health", 503, '{"health":"false","reason":"RAFT NO LEADER"}', False),
        ("/health", 200, "not json", False),
    ],
)
def test_verdict(path, status, body, ready):
    result = verdict(path, status, body)
    assert (result == READY) is ready
    if not ready:
        assert result.startswith(f"{path} answered {status}")


def fetcher(answers: dict[str, object]):
    calls: list[str] = []

    def fetch(url: str) -> tuple[int, str]:
        calls.append(url)
        answer = answers[url]
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    fetch.calls = calls  # type: ignore[attr-defined]
    return fetch


def test_an_etcd_without_readyz_is_asked_for_health():
    fetch = fetcher({"https://a/readyz": (404, "404 page not found"), "https://a/health": (200, '{"health":"true"}')})
    assert probe("https://a", fetch) == READY
    assert fetch.calls == ["https://a/readyz", "https://a/health"]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "ConnectionRefusedError"),
        (urllib.error.URLError(ssl.SSLError(1, "[SSL: CERTIFICATE_VERIFY_FAILED]")), "CERTIFICATE_VERIFY_FAILED"),
        (TimeoutError("timed out"), "TimeoutError: timed out"),
    ],
)
def test_unreachable_endpoint_gives_the_reason(error, expected):
    assert expected in probe("https://a", fetcher({"https://a/readyz": error}))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_waits_until_one_endpoint_is_ready_and_reports_every_ten_seconds():
    clock = Clock()
    ready_at = 25.0

    def fetch(url: str) -> tuple[int, str]:
        if url.startswith("https://b") and clock.now >= ready_at:
            return 200, "ok"
        if url.startswith("https://a"):
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
        return 503, "[-]linearizable_read failed"

    lines: list[str] = []
    waited = wait(settings_from_env(TLS_ENV), fetch, lines.append, sleep=clock.sleep, clock=clock)
    assert waited == ready_at
    waiting = [line for line in lines if line.startswith("waiting for etcd")]
    assert len(waiting) == 3, lines  # at 0 s, 10 s and 20 s
    assert (
        "https://a:2379: ConnectionRefusedError" in waiting[0] and "https://b:2379: /readyz answered 503" in waiting[0]
    )
    assert "Next: etcd is not ready or not reachable" in waiting[0]
    assert lines[-1] == "etcd ready at https://b:2379 after 25.0s"


def test_certificate_trouble_is_named_as_such():
    reasons = {"https://a": "SSLError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"}
    assert "client certificate or CA" in etcd_wait.advice(reasons)


def test_main_refuses_empty_settings_with_exit_2(capsys):
    assert etcd_wait.main({}) == 2
    assert "ETCD_URLS is empty" in capsys.readouterr().err


def test_main_returns_once_etcd_is_ready(monkeypatch, capsys):
    monkeypatch.setattr(etcd_wait, "_get", lambda url, context, timeout: (200, "ok"))
    assert etcd_wait.main({"ETCD_URLS": "http://10.0.0.5:2379"}) == 0
    assert "etcd ready at http://10.0.0.5:2379" in capsys.readouterr().out
