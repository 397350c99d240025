"""An API user: browse live streams, open one, follow its channel, look at followers."""

from __future__ import annotations

import random
from typing import Any

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

from ._accounts import sign_up
from ._common import settings


class ApiUser(FastHttpUser):
    wait_time = between(0.5, 2.0)
    fixed_count = 0  # set from the settings by the locustfile

    def on_start(self) -> None:
        self.api = settings().api_url
        self.host = self.api
        self.user_id, self.auth = sign_up(self.client, "api")

    @task(5)
    def browse(self) -> None:
        listed: dict[str, Any] = self.client.get(
            f"{self.api}/streams?status=live", name="streams (list)").json()
        items = listed.get("items", [])
        if items:
            stream = random.choice(items)
            self.client.get(f"{self.api}/streams/{stream['id']}", name="stream (get)")

    @task(2)
    def watch_stream(self) -> None:
        self.client.get(f"{self.api}/streams/{settings().stream_id}", name="stream (get)")

    @task(1)
    def follow(self) -> None:
        stream: dict[str, Any] = self.client.get(
            f"{self.api}/streams/{settings().stream_id}", name="stream (get)").json()
        channel = stream.get("user_id")
        if channel and channel != self.user_id:
            self.client.put(f"{self.api}/users/{channel}/follow", name="follow",
                            headers=self.auth)
            self.client.get(f"{self.api}/users/{channel}/followers", name="followers")
