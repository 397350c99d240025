"""The edge's client to its upstream (the origin or a shield edge): a keep-alive pool.

httpx on trio: after coalescing an edge sends one request per object, so its per-request
cost (a few hundred microseconds) is not on the viewers' path. Only the cache key (the
target without CMCD) and `x-streamscale-edge: <name>` go upstream: nothing of the
viewer's (no cookies, no address, no user agent of theirs). Every failure becomes an
`Answer` with a clear text body (502 unreachable or broken, 504 too slow), never an
exception and never a hang.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType

import httpx
import trio

log = logging.getLogger(__name__)

EDGE_HEADER = "x-streamscale-edge"
_CONNECT_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: bytes
    cache_control: bytes
    body: bytes
    failed: bool = False  # made by the edge: the upstream did not answer


class Upstream:
    def __init__(self, base_url: str, edge_name: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.edge_name = edge_name
        self._base = httpx.URL(self.base_url)
        self._client = httpx.AsyncClient(
            headers={EDGE_HEADER: edge_name, "accept-encoding": "identity",
                     "user-agent": f"streamscale-edge/{edge_name}"},
            # held requests (blocking reloads) each keep a connection busy: no pool cap
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
            follow_redirects=False,
            trust_env=False,
        )

    async def __aenter__(self) -> Upstream:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with trio.CancelScope(shield=True):
            await self._client.aclose()

    async def fetch(self, target: bytes, timeout_s: float) -> Answer:
        """GET `target` from the upstream within `timeout_s` (connection included)."""
        url = self._base.copy_with(raw_path=target)
        timeout = httpx.Timeout(timeout_s, connect=min(_CONNECT_TIMEOUT_S, timeout_s))
        with trio.move_on_after(timeout_s):
            try:
                response = await self._client.get(url, timeout=timeout)
            except httpx.TimeoutException:
                pass  # answered below, like the deadline
            except httpx.HTTPError as exc:
                return self._failed(502, f"upstream {self.base_url} failed: {_describe(exc)}")
            else:
                headers = response.headers
                return Answer(
                    status=response.status_code,
                    content_type=headers.get("content-type", "").encode("latin-1"),
                    cache_control=headers.get("cache-control", "").encode("latin-1"),
                    body=response.content,
                )
        return self._failed(504, f"upstream {self.base_url} did not answer within "
                                 f"{timeout_s:g} s")

    def _failed(self, status: int, message: str) -> Answer:
        log.warning("edge %s: %s", self.edge_name, message)
        return Answer(status=status, content_type=b"text/plain; charset=utf-8",
                      cache_control=b"no-store",
                      body=f"edge {self.edge_name}: {message}\n".encode(), failed=True)


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
