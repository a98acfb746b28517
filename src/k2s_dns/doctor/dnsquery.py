"""One DNS question to one server, and the local resolver's view of a name.

dnspython is used when it is importable; otherwise a minimal UDP client from the standard library
(encode_query/decode_response, pure) does the same for A, AAAA and CNAME answers. Every function
returns a plain dict: {"rcode": "NOERROR"|..., "records": [...], "error": None|"..."}.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import random
import socket
import struct
import threading

TYPES = {"A": 1, "CNAME": 5, "AAAA": 28, "TXT": 16}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class WireError(ValueError):
    """A response that is not a DNS message for our question."""


def encode_query(name: str, rdtype: str = "A", qid: int = 0) -> bytes:
    """A standard query with recursion desired, one question, class IN."""
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    labels = b"".join(
        bytes([len(label)]) + label for label in (part.encode("idna") for part in name.rstrip(".").split(".") if part)
    )
    return header + labels + b"\x00" + struct.pack("!HH", TYPES[rdtype], 1)


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    labels: list[str] = []
    end = None
    jumps = 0
    while True:
        if offset >= len(data):
            raise WireError("name runs past the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:  # compression pointer
            if offset + 1 >= len(data):
                raise WireError("truncated pointer")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            jumps += 1
            if jumps > 64:
                raise WireError("pointer loop")
            continue
        offset += 1
        if length == 0:
            break
        labels.append(data[offset : offset + length].decode("ascii", errors="replace"))
        offset += length
    return ".".join(labels), end if end is not None else offset


def decode_response(data: bytes, qid: int | None = None) -> dict:
    """rcode, answer records as text (A/AAAA address, CNAME target without the final dot, TXT string)."""
    if len(data) < 12:
        raise WireError("shorter than a DNS header")
    rid, flags, qdcount, ancount, _, _ = struct.unpack("!HHHHHH", data[:12])
    if qid is not None and rid != qid:
        raise WireError(f"answer id {rid} is not the question's {qid}")
    if not flags & 0x8000:
        raise WireError("not a response")
    offset = 12
    for _ in range(qdcount):
        _, offset = _read_name(data, offset)
        offset += 4
    records: list[dict] = []
    for _ in range(ancount):
        owner, offset = _read_name(data, offset)
        if offset + 10 > len(data):
            raise WireError("truncated record")
        rtype, _, ttl, rdlength = struct.unpack("!HHIH", data[offset : offset + 10])
        offset += 10
        rdata = data[offset : offset + rdlength]
        if len(rdata) != rdlength:
            raise WireError("truncated record data")
        kind = TYPE_NAMES.get(rtype, str(rtype))
        if kind == "A" and rdlength == 4:
            value = str(ipaddress.IPv4Address(rdata))
        elif kind == "AAAA" and rdlength == 16:
            value = str(ipaddress.IPv6Address(rdata))
        elif kind == "CNAME":
            value = _read_name(data, offset)[0]
        elif kind == "TXT":
            value = rdata[1 : 1 + rdata[0]].decode(errors="replace") if rdata else ""
        else:
            value = rdata.hex()
        records.append({"name": owner, "type": kind, "ttl": ttl, "value": value})
        offset += rdlength
    return {
        "rcode": RCODES.get(flags & 0x000F, str(flags & 0x000F)),
        "records": records,
        "truncated": bool(flags & 0x0200),
    }


def _stdlib_query(server: str, name: str, rdtype: str, port: int, timeout: float) -> dict:
    qid = random.randrange(1 << 16)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(encode_query(name, rdtype, qid), (server, port))
        while True:  # ignore stray datagrams with another id
            data, _ = sock.recvfrom(65535)
            try:
                return decode_response(data, qid)
            except WireError as err:
                if "id" not in str(err):
                    raise


def _dnspython_query(server: str, name: str, rdtype: str, port: int, timeout: float) -> dict:
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    response = dns.query.udp(dns.message.make_query(name, rdtype), server, port=port, timeout=timeout)
    records = []
    for rrset in response.answer:
        kind = dns.rdatatype.to_text(rrset.rdtype)
        for item in rrset:
            value = item.to_text()
            if kind == "CNAME":
                value = value.rstrip(".")
            elif kind == "TXT":
                value = b"".join(item.strings).decode(errors="replace")
            records.append({"name": rrset.name.to_text().rstrip("."), "type": kind, "ttl": rrset.ttl, "value": value})
    return {"rcode": dns.rcode.to_text(response.rcode()), "records": records, "truncated": False}


def _have_dnspython() -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("dns.message", "dns.query", "dns.rcode"))
    except (ImportError, ValueError):  # no `dns` package, or another one by that name
        return False


def query(server: str, name: str, rdtype: str = "A", port: int = 53, timeout: float = 1.5) -> dict:
    """Ask server for name; never raises: a timeout or an unreachable network is {"error": ...}."""
    ask = _dnspython_query if _have_dnspython() else _stdlib_query
    try:
        result = ask(server, name, rdtype, port, timeout)
    except TimeoutError:
        return {"rcode": "", "records": [], "error": f"no answer within {timeout:g}s"}
    except OSError as err:
        return {"rcode": "", "records": [], "error": err.strerror or str(err)}
    except Exception as err:  # dnspython's own exceptions, malformed answers
        return {"rcode": "", "records": [], "error": f"{type(err).__name__}: {err}"}
    result["error"] = None
    return result


def local_lookup(name: str, timeout: float = 3.0) -> dict:
    """What this machine's resolver (getaddrinfo: hosts file, systemd-resolved, NRPT, ...) says for name."""
    outcome: dict = {"addresses": [], "error": f"no answer within {timeout:g}s"}

    def run() -> None:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            outcome.update(addresses=sorted({info[4][0] for info in infos}), error=None)
        except OSError as err:
            outcome.update(error=str(err))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    return dict(outcome)
