"""A held message is acked as held, over WebSocket and HTTP; ordinary chat is not held.

Through the real platform (gateway -> bus -> worker with the shipped toxicity model), so
the ack a client sees is the worker's verdict, not the gateway's guess.
"""

from __future__ import annotations

from pathlib import Path

from streamscale.testing import make_config
from streamscale.testing.ws_client import open_chat_client

from .test_chat_e2e import platform_api, signup, start_stream, texts_until

# The message from issue 11: its digits were read as leetspeak ("...297.455~" -> "ass~")
# and the model held it at 0.992, while the sender was told it went out.
BENCH = "~B005|00000009|0000046297.455~ hello chat this is a benchmark message!!"
ABUSE = "you are a worthless fucking idiot"


async def test_held_messages_are_acked_as_held(tmp_path: Path) -> None:
    async with platform_api(make_config(tmp_path)) as (api, ws):
        _, token = await signup(api, "dana")
        room = await start_stream(api, token)
        async with open_chat_client(ws) as poster, open_chat_client(ws) as reader:
            await poster.join(room, token)
            await reader.join(room)
            held = await poster.post("c-held", ABUSE)
            assert held["type"] == "ack" and held["status"] == "held", held
            ok = await poster.post("c-bench", BENCH)
            assert ok["type"] == "ack" and ok["status"] == "visible", ok
            # The visible ack's promise holds: it arrives in a batch; the held one never does.
            assert await texts_until(reader, 1) == [BENCH]
            again = await poster.post("c-held", ABUSE)  # a retry hears the same status
            assert again["status"] == "held" and again["message_id"] == held["message_id"]

        auth = {"Authorization": f"Bearer {token}"}
        r = await api.post(f"/api/streams/{room}/chat", headers=auth,
                           json={"client_id": "h-bench", "text": BENCH.replace("455", "457")})
        assert r.status_code == 201 and r.json()["status"] == "visible", r.text
        r = await api.post(f"/api/streams/{room}/chat", headers=auth,
                           json={"client_id": "h-held", "text": ABUSE})
        assert r.status_code == 201 and r.json()["status"] == "held", r.text
