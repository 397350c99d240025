"""Chat figures of the analytics, from what the chat service records (issue 14): posts over
HTTP to the real chat workers, links held by the channel's link policy, a message deleted
by the caster; the endpoint reads them back from `chat_messages`, nothing added to the
chat path. A 201 from the chat API means the message is persisted, so the counts can be
read at once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx

from streamscale.testing import make_config, running_platform

from .test_analytics_api import _user


async def test_posted_held_and_removed_messages_are_counted(tmp_path: Path) -> None:
    base = make_config(tmp_path)
    config = dataclasses.replace(base, chat=dataclasses.replace(
        base.chat, moderation_refresh_s=0.0, toxicity_model=False))
    async with running_platform(config, ("gateway", "chat", "analytics")) as platform, \
            httpx.AsyncClient(base_url=platform.api_url.removesuffix("/api"),
                              timeout=30) as api:
        caster, viewer = await _user(api, "caster"), await _user(api, "viewer")
        caster_id = (await api.get("/api/users/me", headers=caster)).json()["id"]
        stream_id = (await api.post("/api/streams/start", headers=caster, json={
            "title": "t", "category": "c"})).json()["stream"]["id"]
        r = await api.patch(f"/api/channels/{caster_id}/chat-settings", headers=caster,
                            json={"link_policy": "hold"})
        assert r.status_code == 200, r.text
        texts = ["hello", "see https://example.com", "nice", "www.example.org deals", "gg"]
        posted = []
        for k, text in enumerate(texts):
            r = await api.post(f"/api/streams/{stream_id}/chat", headers=viewer,
                               json={"client_id": f"m{k}", "text": text})
            assert r.status_code == 201, r.text
            posted.append(r.json())
        assert [p["status"] for p in posted] == [
            "visible", "held", "visible", "held", "visible"]
        r = await api.delete(f"/api/streams/{stream_id}/chat/{posted[2]['id']}",
                             headers=caster)
        assert r.status_code == 200, r.text

        r = await api.get(f"/api/streams/{stream_id}/analytics", headers=caster)
        assert r.status_code == 200, r.text
        body = r.json()
        summary = body["summary"]
        assert (summary["chat_messages"], summary["chat_held"], summary["chat_removed"]) == (
            5, 2, 1)
        assert sum(c["messages"] for c in body["chat"]) == 5
        assert all(c["messages_per_minute"] == c["messages"] for c in body["chat"])
        assert summary["chat_messages_per_minute"] > 0
