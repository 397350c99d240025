"""Moderation through the API, end to end on the in-process platform: roles, bans (with the
kick), appeals, timeouts, settings, banned words, deletion, the review queue, the audit log.
Workers re-read channel state on every message here (`moderation_refresh_s=0`)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from streamscale.testing import make_config, running_platform
from streamscale.testing.ws_client import open_chat_client

from .test_chat_e2e import signup, start_stream, texts_until

TOXIC = "you are a worthless fucking idiot"


@dataclasses.dataclass
class Env:
    api: httpx.AsyncClient
    ws: str
    ids: dict[str, str]
    tokens: dict[str, str]
    owner: str  # the channel (the owner's user id)
    room: str  # a stream of that channel

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def call(self, method: str, path: str, who: str | None = None,
                   **kwargs: Any) -> httpx.Response:
        headers = self.auth(who) if who else {}
        return await self.api.request(method, path, headers=headers, **kwargs)

    def channel(self, tail: str) -> str:
        return f"/api/channels/{self.owner}/{tail}"

    async def post(self, who: str, cid: str, text: str) -> httpx.Response:
        return await self.call("POST", f"/api/streams/{self.room}/chat", who,
                               json={"client_id": cid, "text": text})

    async def history(self) -> list[str]:
        r = await self.api.get(f"/api/streams/{self.room}/chat", params={"limit": 100})
        return [m["text"] for m in reversed(r.json()["items"])]


@asynccontextmanager
async def platform(tmp_path: Path) -> AsyncIterator[Env]:
    config = make_config(tmp_path)
    config = dataclasses.replace(config, chat=dataclasses.replace(
        config.chat, moderation_refresh_s=0.0))
    async with running_platform(config, ("gateway", "chat")) as running:
        base = running.api_url.removesuffix("/api")
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            ids, tokens = {}, {}
            for name in ("owner", "mod", "viewer", "troll"):
                ids[name], tokens[name] = await signup(api, name)
            room = await start_stream(api, tokens["owner"])
            yield Env(api, running.url("chat", "ws"), ids, tokens, ids["owner"], room)


def code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


async def test_roles_bans_appeals_and_audit(tmp_path: Path) -> None:
    async with platform(tmp_path) as env:
        mod, troll = env.ids["mod"], env.ids["troll"]
        # Only the owner appoints; appointing twice is a no-op.
        r = await env.call("PUT", env.channel(f"moderators/{mod}"), "viewer")
        assert r.status_code == 403, r.text
        for _ in range(2):
            r = await env.call("PUT", env.channel(f"moderators/{mod}"), "owner")
            assert r.status_code == 200 and r.json()["role"] == "moderator", r.text
        r = await env.call("GET", env.channel("moderators"))
        assert [m["user_id"] for m in r.json()["items"]] == [mod]
        assert (await env.call("GET", env.channel(f"moderators/{troll}"))).status_code == 404

        # A viewer cannot ban; the owner cannot be banned.
        r = await env.call("POST", env.channel("bans"), "viewer",
                           json={"user_id": troll, "reason": "x"})
        assert r.status_code == 403 and code(r) == "moderation_forbidden"
        r = await env.call("POST", env.channel("bans"), "mod",
                           json={"user_id": env.owner, "reason": "x"})
        assert r.status_code == 403

        async with open_chat_client(env.ws) as t:
            await t.join(env.room, env.tokens["troll"])
            assert (await t.post("t1", "hi all"))["type"] == "ack"
            assert await texts_until(t, 1) == ["hi all"]  # the room topic is live here
            r = await env.call("POST", env.channel("bans"), "mod",
                               json={"user_id": troll, "reason": "spam"})
            assert r.status_code == 201, r.text
            with trio.fail_after(10):
                assert await t.expect_close() == 1008  # kicked out of the room at once
        r = await env.call("POST", env.channel("bans"), "mod",
                           json={"user_id": troll, "reason": "again"})
        assert r.status_code == 409

        r = await env.post("troll", "t2", "let me back in")
        assert r.status_code == 403 and code(r) == "banned"
        async with open_chat_client(env.ws) as t:
            await t.join(env.room, env.tokens["troll"])
            frame = await t.post("t3", "let me back in")
            assert frame["type"] == "error" and frame["code"] == "banned"
            assert await t.expect_close() == 1008

        r = await env.call("GET", env.channel("bans"), "mod")
        assert [b["user_id"] for b in r.json()["items"]] == [troll]
        assert (await env.call("GET", env.channel("bans"), "viewer")).status_code == 403

        # Appeal: once per ban; the banning moderator may not decide; the owner lifts.
        r = await env.call("POST", env.channel("appeals"), "viewer", json={"text": "me?"})
        assert r.status_code == 409  # not banned
        r = await env.call("POST", env.channel("appeals"), "troll", json={"text": "sorry"})
        assert r.status_code == 201, r.text
        appeal = r.json()
        r = await env.call("POST", env.channel("appeals"), "troll", json={"text": "please"})
        assert r.status_code == 409 and code(r) == "already_appealed"
        r = await env.call("GET", env.channel("appeals"), "mod")
        assert [a["id"] for a in r.json()["items"]] == [appeal["id"]]
        r = await env.call("GET", env.channel("appeals"), "troll", params={"status": "any"})
        assert [a["id"] for a in r.json()["items"]] == [appeal["id"]]
        r = await env.call("GET", env.channel("appeals"), "viewer", params={"status": "any"})
        assert r.json()["items"] == []
        decision = env.channel(f"appeals/{appeal['id']}/decision")
        r = await env.call("POST", decision, "mod", json={"decision": "lift", "reason": "ok"})
        assert r.status_code == 403, r.text
        r = await env.call("POST", decision, "owner", json={"decision": "lift", "reason": "ok"})
        assert r.status_code == 200 and r.json()["status"] == "lifted", r.text
        r = await env.call("POST", decision, "owner", json={"decision": "uphold"})
        assert r.status_code == 409
        r = await env.post("troll", "t4", "thank you")
        assert r.status_code == 201, r.text

        # Ban and unban directly; then the moderator steps down.
        r = await env.call("POST", env.channel("bans"), "owner", json={"user_id": troll})
        assert r.status_code == 201
        r = await env.call("DELETE", env.channel(f"bans/{troll}"), "mod",
                           params={"reason": "second chance"})
        assert r.status_code == 200 and r.json()["lifted_by"] == mod
        assert (await env.call("DELETE", env.channel(f"bans/{troll}"), "mod")).status_code == 404
        assert (await env.call("DELETE", env.channel(f"moderators/{mod}"), "viewer")
                ).status_code == 403  # only the owner, or the moderator themself
        r = await env.call("DELETE", env.channel(f"moderators/{mod}"), "owner")
        assert r.status_code == 200 and r.json()["role"] is None

        # The audit log: every action, newest first; staff only.
        assert (await env.call("GET", env.channel("audit"), "viewer")).status_code == 403
        r = await env.call("GET", env.channel("audit"), "owner", params={"limit": 100})
        entries = list(reversed(r.json()["items"]))
        assert [(e["action"], e["actor_id"]) for e in entries] == [
            ("add_moderator", env.owner), ("ban", mod), ("appeal_filed", troll),
            ("appeal_lifted", env.owner), ("ban", env.owner), ("unban", mod),
            ("remove_moderator", env.owner),
        ]
        assert entries[1]["target_user_id"] == troll and entries[1]["reason"] == "spam"
        assert entries[5]["reason"] == "second chance"


async def test_timeouts_settings_and_words(tmp_path: Path) -> None:
    async with platform(tmp_path) as env:
        viewer = env.ids["viewer"]
        for tail in ("moderators", "chat-settings"):
            r = await env.api.get(f"/api/channels/nobody/{tail}")
            assert r.status_code == 404 and code(r) == "channel_not_found"
        r = await env.call("POST", env.channel("timeouts"), "owner",
                           json={"user_id": viewer, "duration_s": 600, "reason": "cool off"})
        assert r.status_code == 201, r.text
        r = await env.post("viewer", "v1", "hello")
        assert r.status_code == 403 and code(r) == "timed_out"
        r = await env.call("GET", env.channel("timeouts"), "owner")
        assert [t["user_id"] for t in r.json()["items"]] == [viewer]
        r = await env.call("POST", env.channel("timeouts"), "owner",
                           json={"user_id": viewer, "duration_s": 0})
        assert r.status_code == 400
        r = await env.call("DELETE", env.channel(f"timeouts/{viewer}"), "owner")
        assert r.status_code == 200, r.text
        assert (await env.post("viewer", "v2", "hello")).status_code == 201

        # Slow mode: a second message within the interval is refused.
        assert (await env.call("PATCH", env.channel("chat-settings"), "viewer",
                               json={"slow_mode_s": 30})).status_code == 403
        r = await env.call("PATCH", env.channel("chat-settings"), "owner",
                           json={"slow_mode_s": 30})
        assert r.status_code == 200 and r.json()["slow_mode_s"] == 30, r.text
        assert (await env.post("troll", "s1", "first")).status_code == 201
        r = await env.post("troll", "s2", "second")
        assert r.status_code == 429 and code(r) == "slow_mode"

        # Followers-only: refused until the viewer follows.
        r = await env.call("PATCH", env.channel("chat-settings"), "owner",
                           json={"slow_mode_s": 0, "followers_only_min_age_s": 0})
        assert r.json()["followers_only_min_age_s"] == 0
        r = await env.post("viewer", "f1", "may I?")
        assert r.status_code == 403 and code(r) == "followers_only"
        r = await env.call("PUT", f"/api/users/{env.owner}/follow", "viewer")
        assert r.status_code == 200
        assert (await env.post("viewer", "f2", "now I may")).status_code == 201
        r = await env.call("PATCH", env.channel("chat-settings"), "owner",
                           json={"followers_only_min_age_s": None})
        assert r.json()["followers_only_min_age_s"] is None
        assert (await env.api.get(env.channel("chat-settings"))).json()["slow_mode_s"] == 0
        # Null turns followers-only off; the other settings may be left out but not be
        # null, and the published schema says so (no null in their types).
        for name in ("slow_mode_s", "link_policy", "regex_filters"):
            r = await env.call("PATCH", env.channel("chat-settings"), "owner", json={name: None})
            assert r.status_code == 400, (name, r.text)
        spec = (await env.api.get("/api/openapi.json")).json()
        op = spec["paths"]["/api/channels/{channel_id}/chat-settings"]["patch"]
        patch = op["requestBody"]["content"]["application/json"]["schema"]
        for name in ("slow_mode_s", "link_policy", "regex_filters"):
            assert "null" not in str(patch["properties"][name]), patch["properties"][name]
        assert "null" in str(patch["properties"]["followers_only_min_age_s"])

        # Regex filters: a costly pattern is refused by name; a good one blocks.
        r = await env.call("PATCH", env.channel("chat-settings"), "owner",
                           json={"regex_filters": ["ok", "(a+)+b"]})
        assert r.status_code == 400 and "(a+)+b" in r.json()["error"]["message"], r.text
        r = await env.call("PATCH", env.channel("chat-settings"), "owner",
                           json={"regex_filters": [r"buy\s+followers"]})
        assert r.status_code == 200 and r.json()["regex_filters"] == [r"buy\s+followers"]
        r = await env.post("troll", "r1", "buy   followers here")
        assert r.status_code == 422 and code(r) == "blocked"

        # Banned words are stored normalised and catch evasions.
        r = await env.call("POST", env.channel("banned-words"), "owner",
                           json={"word": "Snarrrkle"})
        assert r.status_code == 200 and r.json()["word"] == "snarrkle", r.text
        r = await env.call("POST", env.channel("banned-words"), "owner", json={"word": "a b"})
        assert r.status_code == 400
        r = await env.post("troll", "w1", "SN4RRKL3 everyone")
        assert r.status_code == 422 and code(r) == "blocked"
        r = await env.call("GET", env.channel("banned-words"), "owner")
        assert {"word": "snarrkle", "scope": "channel"} in r.json()["items"]
        assert (await env.call("GET", env.channel("banned-words"), "troll")).status_code == 403
        r = await env.call("DELETE", env.channel("banned-words/SNARRKLE"), "owner")
        assert r.status_code == 200, r.text
        assert (await env.post("troll", "w2", "snarrkle is fine now")).status_code == 201
        r = await env.call("GET", env.channel("audit"), "owner")
        assert [e["action"] for e in reversed(r.json()["items"])] == [
            "timeout", "untimeout", "chat_settings", "chat_settings", "chat_settings",
            "chat_settings", "banned_word_add", "banned_word_remove",
        ]


async def test_delete_and_review_queue(tmp_path: Path) -> None:
    async with platform(tmp_path) as env:
        async with open_chat_client(env.ws) as watcher:
            await watcher.join(env.room)
            first = (await env.post("viewer", "m1", "keep me")).json()["id"]
            gone = (await env.post("viewer", "m2", "delete me")).json()["id"]
            assert await texts_until(watcher, 2) == ["keep me", "delete me"]
            path = f"/api/streams/{env.room}/chat/{gone}"
            assert (await env.call("DELETE", path, "troll")).status_code == 403
            r = await env.call("DELETE", path, "owner", params={"reason": "off topic"})
            assert r.status_code == 200 and r.json()["status"] == "deleted", r.text
            with trio.fail_after(10):
                frame = await watcher.receive_type("deleted")
            assert frame["message_id"] == gone
            assert (await env.call("DELETE", path, "owner")).status_code == 404
            assert await env.history() == ["keep me"]
            # An author may delete their own message.
            r = await env.call("DELETE", f"/api/streams/{env.room}/chat/{first}", "viewer")
            assert r.status_code == 200

            # The shipped model holds abuse for review; approving shows it to the room.
            held = await env.post("troll", "h1", TOXIC)
            assert held.json()["status"] == "held"
            rejected = (await env.post("troll", "h2", TOXIC + " loser")).json()["id"]
            assert (await env.call("GET", env.channel("review"), "viewer")).status_code == 403
            r = await env.call("GET", env.channel("review"), "owner")
            items = r.json()["items"]
            assert [m["id"] for m in items] == [rejected, held.json()["id"]]
            assert items[0]["moderation"]["toxicity"] > 0
            r = await env.call("GET", env.channel("review"), "owner",
                               params={"stream_id": env.room, "limit": 1})
            assert [m["id"] for m in r.json()["items"]] == [rejected]
            approve = env.channel(f"review/{held.json()['id']}")
            r = await env.call("POST", approve, "owner", json={"approve": True})
            assert r.status_code == 200 and r.json()["status"] == "visible", r.text
            assert await texts_until(watcher, 1) == [TOXIC]
            assert (await env.call("POST", approve, "owner", json={"approve": True})
                    ).status_code == 409
            r = await env.call("POST", env.channel(f"review/{rejected}"), "owner",
                               json={"approve": False, "reason": "abuse"})
            assert r.json()["status"] == "deleted"
        assert await env.history() == [TOXIC]
        assert (await env.call("GET", env.channel("review"), "owner")).json()["items"] == []
        r = await env.call("GET", env.channel("audit"), "owner")
        assert [(e["action"], e["target_message_id"]) for e in reversed(r.json()["items"])
                ] == [("delete_message", gone), ("delete_message", first),
                      ("review_approve", held.json()["id"]), ("review_reject", rejected)]
