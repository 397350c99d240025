"""Providers for drills on service processes (`"module": "chaos.process_actions"`): run
`streamscale up --services X` as a child, SIGKILL and restart it, and a chat writer whose
acknowledged messages (201: persisted) must all be readable afterwards.
"""

from __future__ import annotations

import functools
import logging
import ssl
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

from . import accounts
from .ctk import provider
from .drill import current
from .process import ServiceProcess, free_port

log = logging.getLogger(__name__)

_CHEAP_HASHING = {"STREAMSCALE_AUTH__PASSWORD_MEMORY_KIB": "8192",
                  "STREAMSCALE_AUTH__PASSWORD_TIME_COST": "1"}


@dataclass
class ChatWriter:
    """Posts a message every `interval_s`; a failed post is retried with the same client
    id (the API is idempotent on it) until it is acknowledged."""

    base: str
    auth: dict[str, str]
    stream_id: str
    interval_s: float
    name: str = "writer"
    text: str = "{name} says {n}"  # what it posts ({name}, {n} filled in)
    acked: dict[str, float] = field(default_factory=dict)  # message id -> when acked
    sent: dict[str, float] = field(default_factory=dict)  # ... -> when its acked post was sent
    held: set[str] = field(default_factory=set)  # acked, held for a moderator
    failures: int = 0
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status -> count
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    async def run(self) -> None:
        retry_s = max(self.interval_s, 0.05)
        with self.scope:
            async with httpx.AsyncClient(base_url=self.base, timeout=5, verify=_tls()) as client:
                n = 0
                while True:
                    client_id = f"{self.name}-{n}"
                    text = self.text.format(name=self.name, n=n)
                    while not await self._post(client, client_id, text):  # noqa: ASYNC110
                        await trio.sleep(retry_s)  # retry pacing, not synchronisation
                    n += 1
                    await trio.sleep(self.interval_s)  # the writer's message rate

    async def _post(self, client: httpx.AsyncClient, client_id: str, text: str) -> bool:
        sent = trio.current_time()
        try:
            r = await client.post(f"/api/streams/{self.stream_id}/chat", headers=self.auth,
                                  json={"client_id": client_id, "text": text})
        except httpx.HTTPError:
            self.failures += 1
            return False
        self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
        if r.status_code != 201:
            self.failures += 1
            return False
        body = r.json()
        if body["status"] == "visible":
            self.acked[body["id"]] = trio.current_time()
            self.sent[body["id"]] = sent
        elif body["status"] == "held":
            self.held.add(body["id"])
        return True


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every writer's client: httpx builds a new one per client
    otherwise (~50 ms of CPU each, loading the CA bundle), and a flood's tens of writers
    starting at once would stall the drill's event loop for seconds, delaying every
    post and every chat reader's receive time with it."""
    return ssl.create_default_context()


def _service(name: str) -> ServiceProcess:
    service = current().state.get(f"service:{name}")
    if not isinstance(service, ServiceProcess):
        raise RuntimeError(f"no service process {name!r}: start_service first")
    return service


@provider
async def start_service(services: str = "gateway,chat", name: str = "api",
                        env: dict[str, Any] | None = None) -> str:
    """`streamscale up --services <services>` on fixed ports (kept across restarts) with a
    data dir of its own, and `env` (STREAMSCALE_* settings) on top; returns the API URL."""
    drill = current()
    data_dir = Path(tempfile.mkdtemp(prefix=f"streamscale-{name}-"))
    env = {**_CHEAP_HASHING, "STREAMSCALE_GATEWAY__PORT": str(free_port()),
           # every drill user signs up from one address: the per-IP sign-in limit would
           # refuse all but the first few (per-user write limits stay as configured)
           "STREAMSCALE_GATEWAY__LOGIN_RATE_PER_MINUTE": "100000",
           "STREAMSCALE_CHAT__PORT": str(free_port()),
           "STREAMSCALE_MEDIA__RTMP_PORT": "0", "STREAMSCALE_ORIGIN__PORT": "0",
           **{key: str(value) for key, value in (env or {}).items()}}
    service = ServiceProcess(services, data_dir, env=env)
    drill.state[f"service:{name}"] = service
    urls = await service.start(drill.nursery)
    return urls["api"]


@provider
async def kill_service(name: str = "api") -> int | None:
    """SIGKILL the service process; returns its exit status (-9)."""
    service = _service(name)
    service.kill()
    return await service.wait_dead()


@provider
async def restart_service(name: str = "api") -> str:
    service = _service(name)
    urls = await service.restart(current().nursery)
    return urls["api"]


@provider
async def stop_service(name: str = "api") -> str:
    service = current().state.get(f"service:{name}")
    if isinstance(service, ServiceProcess):
        await service.stop()
    return "stopped"


@provider
async def service_answers(name: str = "api", timeout_s: float = 2.0) -> bool:
    api = _service(name).urls["api"]
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            return (await client.get(f"{api}/streams", params={"limit": 1})).status_code == 200
    except httpx.HTTPError:
        return False


def _writers() -> list[ChatWriter]:
    writers: list[ChatWriter] = current().state.setdefault("chat_writers", [])
    return writers


@provider
async def start_chat_writer(name: str = "api", interval_s: float = 0.1,
                            username: str = "writer", text: str = "{name} says {n}") -> str:
    """A writer posting to the drill's stream chat in the background (the first one starts
    the stream as its caster)."""
    drill = current()
    base = _service(name).urls["api"].removesuffix("/api")
    async with httpx.AsyncClient(base_url=base, timeout=10, verify=_tls()) as client:
        auth = await accounts.sign_in(client, username)
        stream_id = drill.state.get("chat_stream_id")
        if stream_id is None:
            stream_id, _ = await accounts.start_stream(client, auth, "chat drill")
            drill.state["chat_stream_id"] = stream_id
    writer = ChatWriter(base, auth, str(stream_id), float(interval_s), name=username,
                        text=text)
    _writers().append(writer)
    drill.nursery.start_soon(writer.run)
    return writer.stream_id


@provider
async def chat_flood(writers: int = 20, name: str = "api", text: str = "{name} says {n}"
                     ) -> int:
    """`writers` more users post `text` into the same room as fast as they are answered."""
    async with trio.open_nursery() as nursery:
        for i in range(int(writers)):
            nursery.start_soon(partial(start_chat_writer, name, 0.0, f"flood{i}", text))
    return len(_writers())


@provider
async def link_raid(writers: int = 10, name: str = "api") -> int:
    """`writers` raiders post spam links as fast as they are answered (held for review
    once the channel holds links)."""
    async with trio.open_nursery() as nursery:
        for i in range(int(writers)):
            nursery.start_soon(partial(start_chat_writer, name, 0.0, f"raid{i}",
                                       "free coins at https://{name}-{n}.example.xyz"))
    return len(_writers())


@provider
async def hold_links() -> str:
    """The caster sets the channel's link policy to "hold" (links wait for review)."""
    caster = _writer("caster")
    async with httpx.AsyncClient(base_url=caster.base, timeout=10) as client:
        me = await client.get("/api/users/me", headers=caster.auth)
        me.raise_for_status()
        channel_id = str(me.json()["id"])
        current().state["channel_id"] = channel_id
        r = await client.patch(f"/api/channels/{channel_id}/chat-settings",
                               headers=caster.auth, json={"link_policy": "hold"})
        r.raise_for_status()
    return str(r.json()["link_policy"])


@provider
async def held_missing_from_review() -> int:
    """Messages acked as held that the caster's review queue does not list (must be 0)."""
    caster = _writer("caster")
    held = {message for w in _writers() for message in w.held}
    channel_id = current().state.get("channel_id")
    if channel_id is None:
        return len(held)
    queued = await _all_ids(caster.base, f"/api/channels/{channel_id}/review", caster.auth)
    return len(held - queued)


@provider
async def held_count() -> int:
    return sum(len(w.held) for w in _writers())


@provider
async def stop_chat_flood(prefix: str = "flood") -> dict[str, int]:
    """Stop the writers named `prefix`*; returns the answers they got (status -> count)."""
    totals: dict[str, int] = {}
    for writer in _writers():
        if writer.name.startswith(prefix):
            writer.scope.cancel()
            for status, count in writer.statuses.items():
                totals[str(status)] = totals.get(str(status), 0) + count
    return totals


def _writer(username: str = "writer") -> ChatWriter:
    for writer in _writers():
        if writer.name == username:
            return writer
    raise RuntimeError(f"no chat writer {username!r}: start_chat_writer first")


@provider
async def chat_answers(username: str = "writer") -> dict[str, int]:
    """What `username`'s posts were answered with so far (HTTP status -> count)."""
    writer = _writer(username)
    return {str(k): v for k, v in sorted(writer.statuses.items())} | {
        "connection_failures": writer.failures - sum(
            v for k, v in writer.statuses.items() if k != 201)}


@provider
async def chat_acks(window_s: float = 3.0, username: str = "writer") -> int:
    """`username`'s messages acknowledged in the last `window_s`."""
    since = trio.current_time() - window_s
    return sum(at >= since for at in _writer(username).acked.values())


@provider
async def acked_messages_lost() -> int:
    """Acknowledged messages (every writer's) missing from the chat history (must be 0)."""
    writer = _writer()
    acked = {message for w in _writers() for message in w.acked}
    seen = await _all_ids(writer.base, f"/api/streams/{writer.stream_id}/chat")
    lost = acked - seen
    if lost:
        log.warning("%d acknowledged messages lost: %s", len(lost), sorted(lost)[:10])
    return len(lost)


async def _all_ids(base: str, path: str, headers: dict[str, str] | None = None) -> set[str]:
    """The ids of every item of a cursor-paged API listing."""
    ids: set[str] = set()
    async with httpx.AsyncClient(base_url=base, timeout=10, headers=headers) as client:
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            r = await client.get(path, params=params)
            r.raise_for_status()
            body = r.json()
            ids.update(str(item["id"]) for item in body["items"])
            cursor = body.get("next_cursor")
            if not cursor:
                return ids
