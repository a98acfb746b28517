"""A minimal client for etcd's JSON gRPC gateway (/v3/...), so the hook image needs no etcd library.

The gateway ignores the client certificate's CN for authorization (etcd
documents CN-based auth as gRPC-only); once authentication is on, requests
carry a token from authenticate() instead.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path


class GatewayError(Exception):
    """An error answer from etcd (HTTP status and etcd's message)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"etcd answered {status}: {message}")
        self.status = status
        self.message = message


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def prefix_range_end(prefix: str) -> str:
    """etcd's range end for "every key starting with prefix" (last byte + 1), base64-encoded."""
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


def tls_context(cert: Path | None, key: Path | None, ca: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cert and key:
        context.load_cert_chain(str(cert), str(key))
    return context


class Gateway:
    def __init__(self, endpoint: str, context: ssl.SSLContext | None, timeout: float = 15):
        self.endpoint = endpoint.rstrip("/")
        self.context = context if endpoint.startswith("https:") else None
        self.timeout = timeout
        self.token: str | None = None

    def call(self, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(f"{self.endpoint}{path}", data=json.dumps(body or {}).encode(), method="POST")
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", self.token)
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                message = json.loads(raw).get("message") or json.loads(raw).get("error") or raw.decode()
            except ValueError:
                message = raw.decode(errors="replace")
            raise GatewayError(err.code, message) from None

    def authenticate(self, name: str, password: str) -> None:
        self.token = self.call("/v3/auth/authenticate", {"name": name, "password": password})["token"]

    def records(self, prefix: str) -> list[dict]:
        prefix = prefix.rstrip("/") + "/"
        return self.call("/v3/kv/range", {"key": b64(prefix), "range_end": prefix_range_end(prefix)}).get("kvs", [])

    def delete(self, key: str) -> None:
        self.call("/v3/kv/deleterange", {"key": b64(key)})
