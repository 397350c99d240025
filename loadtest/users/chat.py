"""A chat viewer over the platform's WebSocket protocol (docs/chat-protocol.md).

Signs up, joins the stream's room with its token, posts at the scenario's per-viewer chat
rate (compressed with the run's timeline) and reads every batch. Reported: connect, join
and send->ack as `WS` requests; `chat delivery` (a message's server `at` to its arrival in
a batch here, same clock) as a metric. websocket-client is blocking; under Locust's gevent
patching it yields like any socket.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from datetime import datetime
from typing import Any

import websocket
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from ._accounts import sign_up
from ._common import metric, plan, settings

WS = "WS"


class ChatUser(FastHttpUser):
    wait_time = constant(0)
    fixed_count = 0  # set from the settings by the locustfile

    def on_start(self) -> None:
        s = settings()
        self.host = s.api_url
        _, auth = sign_up(self.client, "chat")
        self.token = auth["Authorization"].removeprefix("Bearer ")
        self.ids = itertools.count()
        self.ws = self._timed("connect", lambda: websocket.create_connection(
            s.chat_url, timeout=10))
        self._send({"v": 1, "type": "join", "room": s.stream_id, "token": self.token})
        self._timed("join", lambda: self._until("joined"))
        p = plan()
        chat_rate = _scenario_chat_rate() * p.time_scale
        self.mean_gap_s = 1.0 / chat_rate if chat_rate > 0 else 3600.0

    def on_stop(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()

    def _timed(self, name: str, call: Any) -> Any:
        started = time.monotonic()
        try:
            result = call()
        except Exception as exc:
            self.environment.events.request.fire(
                request_type=WS, name=name, response_time=(time.monotonic() - started) * 1000,
                response_length=0, exception=exc, context={})
            raise
        self.environment.events.request.fire(
            request_type=WS, name=name, response_time=(time.monotonic() - started) * 1000,
            response_length=0, exception=None, context={})
        return result

    def _send(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame))

    def _until(self, kind: str, client_id: str | None = None) -> dict[str, Any]:
        """Read frames (noting deliveries) until one of `kind` (with `client_id`) comes."""
        while True:
            frame: dict[str, Any] = json.loads(self.ws.recv())
            self._note(frame)
            if frame.get("type") == "error":
                raise RuntimeError(f"chat error {frame.get('code')}: {frame.get('message')}")
            if frame.get("type") == kind and (client_id is None or frame.get("id") == client_id):
                return frame

    def _note(self, frame: dict[str, Any]) -> None:
        if frame.get("type") != "batch":
            return
        now = time.time()
        for message in frame.get("messages", []):
            at = datetime.fromisoformat(str(message["at"]).replace("Z", "+00:00"))
            metric(self.environment, "chat delivery", max(0.0, now - at.timestamp()))

    @task
    def chat(self) -> None:
        deadline = time.monotonic() + random.expovariate(1.0 / self.mean_gap_s)
        self.ws.settimeout(0.5)
        while time.monotonic() < deadline:  # read what the room says until our next post
            try:
                self._note(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                continue
        self.ws.settimeout(10)
        client_id = f"c-{next(self.ids)}"
        self._send({"v": 1, "type": "send", "id": client_id,
                    "text": f"load test message {client_id}"})
        self._timed("send->ack", lambda: self._until("ack", client_id))


def _scenario_chat_rate() -> float:
    from sim.scenario import load_scenario

    return float(load_scenario(settings().scenario).workload.chat_msgs_per_viewer_s)
