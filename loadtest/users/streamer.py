"""A streamer: signs up, starts a stream through the API and publishes with ffmpeg
(a test pattern, 2 s keyframes as OBS sends) for as long as the user lives."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from ..publishing import publish_command
from ._accounts import sign_up
from ._common import settings


class StreamerUser(FastHttpUser):
    wait_time = constant(1.0)
    fixed_count = 0  # set from the settings by the locustfile

    def on_start(self) -> None:
        s = settings()
        self.host = s.api_url
        _, self.auth = sign_up(self.client, "caster")
        body: dict[str, Any] = self.client.post(
            f"{s.api_url}/streams/start", name="stream start", headers=self.auth,
            json={"title": "load test", "category": "test"}).json()
        self.stream_id = body["stream"]["id"]
        self.started = time.monotonic()
        self.ffmpeg = subprocess.Popen(  # gevent-patched: waits cooperatively
            publish_command(f"{s.rtmp_url}/{body['stream_key']}", s.duration_s + 5),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @task
    def broadcast(self) -> None:
        """Watch the publisher; report its exit before the run's end as a failure."""
        code = self.ffmpeg.poll()
        self.environment.events.request.fire(
            request_type="RTMP", name="publish", response_time=0.0, response_length=0,
            exception=None if code is None else RuntimeError(f"ffmpeg exited {code}"),
            context={})
        self.client.get(f"{settings().api_url}/streams/{self.stream_id}", name="stream (get)")

    def on_stop(self) -> None:
        if self.ffmpeg.poll() is None:
            self.ffmpeg.terminate()
            self.ffmpeg.wait(timeout=5)
        self.client.post(f"{settings().api_url}/streams/{self.stream_id}/stop",
                         name="stream stop", headers=self.auth)
