"""Viewer sessions: which player a media request comes from.

Players say so with CMCD (CTA-5004, Common Media Client Data): hls.js with `cmcd: {}`
adds `CMCD=...sid="<uuid>"...` to every request's query (or a `CMCD-Session` header).
CDNs count viewers by it. A request without one is attributed to its client address and
user agent, hashed, which merges players behind one NAT and browser build: a fallback,
never the preferred source.

The `CMCD` query parameter is per-player, so caches must key objects without it
(`cache_target`), or every viewer would miss.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from urllib.parse import unquote

_SID_MAX = 64  # CMCD: sid is a string of at most 64 characters
_CMCD = b"CMCD="
_SID_ENCODED = b"sid%3D%22"  # sid=" as encodeURIComponent writes it


def cache_target(target: bytes) -> bytes:
    """The request target without its `CMCD` query parameter (the cache key)."""
    path, sep, query = target.partition(b"?")
    if not sep or _CMCD not in query:
        return target
    kept = [item for item in query.split(b"&") if not item.startswith(_CMCD)]
    return path + b"?" + b"&".join(kept) if kept else path


def cmcd_pairs(data: str) -> dict[str, str]:
    """`br=3200,sid="abc",bs` -> {"br": "3200", "sid": "abc", "bs": ""} (tolerant)."""
    out: dict[str, str] = {}
    key = ""
    i, n = 0, len(data)
    while i < n:
        j = i
        while j < n and data[j] not in "=,":
            j += 1
        key = data[i:j].strip()
        if j < n and data[j] == "=":
            j += 1
            if j < n and data[j] == '"':
                end = j + 1
                while end < n and data[end] != '"':
                    end += 2 if data[end] == "\\" else 1
                value = data[j + 1:min(end, n)].replace('\\"', '"').replace("\\\\", "\\")
                j = end + 1
            else:
                end = data.find(",", j)
                end = n if end < 0 else end
                value = data[j:end].strip()
                j = end
        else:
            value = ""
        if key:
            out[key] = value
        while j < n and data[j] != ",":
            j += 1
        i = j + 1
    return out


def cmcd_from_query(query: bytes) -> dict[str, str]:
    for item in query.split(b"&"):
        if item.startswith(_CMCD):
            try:
                return cmcd_pairs(unquote(item[len(_CMCD):].decode("ascii")))
            except UnicodeDecodeError:
                return {}
    return {}


def session_id(target: bytes, headers: Sequence[tuple[bytes, bytes]], peer: str) -> str:
    """The viewer session of a request: its CMCD sid, else a hash of address + user agent."""
    _, _, query = target.partition(b"?")
    sid = ""
    if _CMCD in query:
        # hls.js sends sid="<uuid>" percent-encoded: find it without parsing the rest
        start = query.find(_SID_ENCODED)
        if start >= 0:
            start += len(_SID_ENCODED)
            end = query.find(b"%22", start)
            raw = query[start:end] if end >= 0 else b""
            if raw and b"%" not in raw and b"&" not in raw:
                sid = raw.decode("ascii", "replace")
        if not sid:
            sid = cmcd_from_query(query).get("sid", "")
    agent = b""
    if not sid:
        for name, value in headers:
            if name == b"cmcd-session":
                sid = cmcd_pairs(value.decode("latin-1")).get("sid", "")
            elif name == b"user-agent":
                agent = value
    if sid and len(sid) <= _SID_MAX and sid.isprintable():
        return sid
    digest = hashlib.blake2b(peer.encode() + b"\0" + agent, digest_size=8).hexdigest()
    return f"addr:{digest}"
