"""Providers for drills on service processes (`"module": "chaos.process_actions"`): run
`streamscale up --services X` as a child, SIGKILL and restart it, and a chat writer whose
acknowledged messages (201: persisted) must all be readable afterwards.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio

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
    acked: dict[str, float] = field(default_factory=dict)  # message id -> when acked
    failures: int = 0

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=5) as client:
            n = 0
            while True:
                client_id = f"drill-{n}"
                while not await self._post(client, client_id, f"message {n}"):  # noqa: ASYNC110
                    await trio.sleep(self.interval_s)  # retry pacing, not synchronisation
                n += 1
                await trio.sleep(self.interval_s)  # the writer's message rate

    async def _post(self, client: httpx.AsyncClient, client_id: str, text: str) -> bool:
        try:
            r = await client.post(f"/api/streams/{self.stream_id}/chat", headers=self.auth,
                                  json={"client_id": client_id, "text": text})
        except httpx.HTTPError:
            self.failures += 1
            return False
        if r.status_code != 201:
            self.failures += 1
            return False
        body = r.json()
        if body["status"] == "visible":
            self.acked[body["id"]] = trio.current_time()
        return True


def _service(name: str) -> ServiceProcess:
    service = current().state.get(f"service:{name}")
    if not isinstance(service, ServiceProcess):
        raise RuntimeError(f"no service process {name!r}: start_service first")
    return service


@provider
async def start_service(services: str = "gateway,chat", name: str = "api") -> str:
    """`streamscale up --services <services>` on fixed ports (kept across restarts) with a
    data dir of its own; returns the API URL."""
    drill = current()
    data_dir = Path(tempfile.mkdtemp(prefix=f"streamscale-{name}-"))
    env = {**_CHEAP_HASHING, "STREAMSCALE_GATEWAY__PORT": str(free_port()),
           "STREAMSCALE_CHAT__PORT": str(free_port()),
           "STREAMSCALE_MEDIA__RTMP_PORT": "0", "STREAMSCALE_ORIGIN__PORT": "0"}
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


@provider
async def start_chat_writer(name: str = "api", interval_s: float = 0.1) -> str:
    """A caster with a live stream and a background writer posting to its chat."""
    drill = current()
    base = _service(name).urls["api"].removesuffix("/api")
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        await client.post("/api/users/register", json={
            "username": "writer", "email": "writer@example.com", "password": "pass word 1"})
        login = await client.post("/api/users/login", json={
            "login": "writer", "password": "pass word 1"})
        login.raise_for_status()
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        started = await client.post("/api/streams/start", headers=auth,
                                    json={"title": "spof", "category": "test"})
        started.raise_for_status()
    writer = ChatWriter(base, auth, started.json()["stream"]["id"], interval_s)
    drill.state["chat_writer"] = writer
    drill.nursery.start_soon(writer.run)
    return writer.stream_id


def _writer() -> ChatWriter:
    writer = current().state.get("chat_writer")
    if not isinstance(writer, ChatWriter):
        raise RuntimeError("start_chat_writer first")
    return writer


@provider
async def chat_acks(window_s: float = 3.0) -> int:
    """Messages acknowledged in the last `window_s`."""
    since = trio.current_time() - window_s
    return sum(at >= since for at in _writer().acked.values())


@provider
async def acked_messages_lost() -> int:
    """Acknowledged messages missing from the chat history (must be 0)."""
    writer = _writer()
    acked = set(writer.acked)
    seen: set[str] = set()
    async with httpx.AsyncClient(base_url=writer.base, timeout=10) as client:
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            r = await client.get(f"/api/streams/{writer.stream_id}/chat", params=params)
            r.raise_for_status()
            body = r.json()
            seen.update(str(item["id"]) for item in body["items"])
            cursor = body.get("next_cursor")
            if not cursor:
                break
    lost = acked - seen
    if lost:
        log.warning("%d acknowledged messages lost: %s", len(lost), sorted(lost)[:10])
    return len(lost)
