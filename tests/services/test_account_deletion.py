"""DELETE /api/users/me through the real API (issue 11 item 12): password confirmed,
tokens void at once (HTTP and chat), open streams ended, personal data gone, chat
messages kept with the author shown as deleted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest

from streamscale.protocols.chat import CloseCode
from streamscale.testing import make_config, running_platform
from streamscale.testing.ws_client import ChatClosed, open_chat_client

from .chat.test_chat_e2e import signup, start_stream
from .helpers import assert_error

PASSWORD = "pass word 1"  # signup's


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_delete_account(tmp_path: Path) -> None:
    config = make_config(tmp_path)  # accounts re-read on every post (no refresh delay)
    config = dataclasses.replace(config, chat=dataclasses.replace(
        config.chat, moderation_refresh_s=0.0))
    async with running_platform(config, ("gateway", "chat")) as running:
        base = running.api_url.removesuffix("/api")
        ws = running.url("chat", "ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as api, \
                open_chat_client(ws) as joined:
            alice_id, _ = await signup(api, "alice")
            bob_id, bob = await signup(api, "bob")
            r = await api.post("/api/users/login", json={"login": "alice",
                                                         "password": PASSWORD})
            access, refresh = r.json()["access_token"], r.json()["refresh_token"]
            await api.put(f"/api/users/{bob_id}/follow", headers=bearer(access))
            await api.put(f"/api/users/{alice_id}/follow", headers=bearer(bob))
            alice_room = await start_stream(api, access)
            bob_room = await start_stream(api, bob)
            r = await api.post(f"/api/streams/{bob_room}/chat", headers=bearer(access),
                               json={"client_id": "a1", "text": "hello from alice"})
            assert r.status_code == 201, r.text

            await joined.join(bob_room, access)  # joined before the deletion
            assert (await joined.post("j1", "still joined"))["type"] == "ack"

            # Refused: no token (401), wrong password (403), no password (400).
            r = await api.request("DELETE", "/api/users/me", json={"password": PASSWORD})
            assert_error(r, 401)
            r = await api.request("DELETE", "/api/users/me", headers=bearer(access),
                                  json={"password": "not it at all"})
            assert_error(r, 403, "invalid_credentials")
            r = await api.request("DELETE", "/api/users/me", headers=bearer(access), json={})
            assert_error(r, 400)
            assert (await api.get("/api/users/me", headers=bearer(access))).status_code == 200

            r = await api.request("DELETE", "/api/users/me", headers=bearer(access),
                                  json={"password": PASSWORD})
            assert r.status_code == 200, r.text
            assert r.json() == {"deleted": True, "streams_ended": [alice_room]}

            # Every token is void at once.
            assert_error(await api.get("/api/users/me", headers=bearer(access)), 401,
                         "invalid_token")
            r = await api.request("DELETE", "/api/users/me", headers=bearer(access),
                                  json={"password": PASSWORD})
            assert_error(r, 401, "invalid_token")
            r = await api.post("/api/users/refresh", json={"refresh_token": refresh})
            assert_error(r, 401, "invalid_refresh_token")
            r = await api.post("/api/users/login", json={"login": "alice",
                                                         "password": PASSWORD})
            assert_error(r, 401, "invalid_credentials")
            r = await api.post(f"/api/streams/{bob_room}/chat", headers=bearer(access),
                               json={"client_id": "a2", "text": "still here?"})
            assert_error(r, 401, "invalid_token")
            async with open_chat_client(ws) as client:
                await client.send_text(
                    f'{{"v":1,"type":"join","room":"{bob_room}","token":"{access}"}}')
                with pytest.raises(ChatClosed) as closed:  # not "joined"
                    await client.receive()
                assert closed.value.code == CloseCode.AUTH_FAILED

            # The connection joined before is refused on its next post, and closed.
            frame = await joined.post("j2", "am I gone?")
            assert frame["type"] == "error" and frame["code"] == "account_deleted", frame
            assert await joined.expect_close() == CloseCode.POLICY_VIOLATION

            # The stream ended; the profile and follows are gone.
            r = await api.get(f"/api/streams/{alice_room}")
            assert r.json()["status"] == "ended", r.text
            assert_error(await api.get(f"/api/users/{alice_id}"), 404, "user_not_found")
            me = (await api.get("/api/users/me", headers=bearer(bob))).json()
            assert (me["followers"], me["following"]) == (0, 0)

            # Chat history keeps the message, its author shown as deleted.
            r = await api.get(f"/api/streams/{bob_room}/chat")
            kept = r.json()["items"]
            assert [m["text"] for m in kept] == ["still joined", "hello from alice"]
            assert {m["username"] for m in kept} == {"[deleted]"}

            # The username and email are free again.
            new_id, _ = await signup(api, "alice")
            assert new_id != alice_id


@pytest.mark.parametrize("body", [{"password": "x" * 129}, {"password": 5},
                                  {"password": PASSWORD, "extra": 1}])
async def test_delete_account_validates_the_body(tmp_path: Path, body: object) -> None:
    async with (running_platform(make_config(tmp_path), ("gateway",)) as running,
                httpx.AsyncClient(base_url=running.api_url.removesuffix("/api")) as api):
        _, access = await signup(api, "carol")
        r = await api.request("DELETE", "/api/users/me", headers=bearer(access), json=body)
        assert_error(r, 400)
