"""Chat viewers over the platform's WebSocket protocol (docs/chat-protocol.md).

Each Locust user is a chat *slot* (a returning viewer: it signs up once). Chat sessions
follow the run's open schedule: the viewers of the arrival schedule who open the chat
(`chat_join_fraction` of them, `loadtest.arrivals.chat_arrivals`), each for its viewer's
session. A free slot takes the next one when it is due, connects, joins the stream's room
with its token, posts at the scenario's per-viewer chat rate (compressed with the run's
timeline), reads every batch, and leaves when the session ends. Reported: connect, join
and send->ack as `WS` requests; `chat join lateness` (a session begun after its scheduled
time because every slot was busy); `chat delivery` (a message's server `at` to its arrival
in a batch here, same clock) as a metric. websocket-client is blocking; under Locust's
gevent patching it yields like any socket.
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
from ._common import chat_schedule, chat_token, metric, next_session, plan, scenario, settings

WS = "WS"


class ChatUser(FastHttpUser):
    wait_time = constant(0)
    fixed_count = 0  # chat slots, set from the settings by the locustfile

    def on_start(self) -> None:
        s = settings()
        self.host = s.api_url
        token = chat_token()  # made before the run; sign up here only if they ran out
        if token is None:
            _, auth = sign_up(self.client, "chat")
            token = auth["Authorization"].removeprefix("Bearer ")
        self.token = token
        self.ids = itertools.count()
        self.ws: websocket.WebSocket | None = None
        chat_rate = scenario().workload.chat_msgs_per_viewer_s * plan().time_scale
        self.mean_gap_s = 1.0 / chat_rate if chat_rate > 0 else 3600.0

    def on_stop(self) -> None:
        self._leave()

    def _leave(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None

    @task
    def session(self) -> None:
        taken = next_session(self.environment, chat_schedule(), "chat join lateness")
        if taken is None:
            return
        scheduled_s, arrival = taken
        end_s = scheduled_s + arrival.session_s
        s = settings()
        try:
            self.ws = self._timed("connect", lambda: websocket.create_connection(
                s.chat_url, timeout=10))
            self._send({"v": 1, "type": "join", "room": s.stream_id, "token": self.token})
            self._timed("join", lambda: self._until("joined"))
            while time.monotonic() < end_s:
                self._chat(end_s)
        except (OSError, RuntimeError, websocket.WebSocketException):
            pass  # reported as a failed WS request by _timed; the session ends here
        finally:
            self._leave()

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
        assert self.ws is not None
        self.ws.send(json.dumps(frame))

    def _until(self, kind: str, client_id: str | None = None) -> dict[str, Any]:
        """Read frames (noting deliveries) until one of `kind` (with `client_id`) comes."""
        assert self.ws is not None
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

    def _chat(self, end_s: float) -> None:
        """Read what the room says until the next post (exponential gaps), then post."""
        assert self.ws is not None
        deadline = time.monotonic() + random.expovariate(1.0 / self.mean_gap_s)
        self.ws.settimeout(0.5)
        while time.monotonic() < min(deadline, end_s):
            try:
                self._note(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                continue
        if time.monotonic() >= end_s:
            return
        self.ws.settimeout(10)
        client_id = f"c-{next(self.ids)}"
        self._send({"v": 1, "type": "send", "id": client_id,
                    "text": f"load test message {client_id}"})
        self._timed("send->ack", lambda: self._until("ack", client_id))
