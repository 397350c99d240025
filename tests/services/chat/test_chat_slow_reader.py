"""A reader who stops reading is dropped, and when it reads again it finds the 1013 close
(docs/chat-protocol.md, "Slow readers"). The client is the `websockets` library's own
(threaded, synchronous) client, which stops reading its socket once its queue is full."""

from __future__ import annotations

import json
import threading

import pytest
import trio
import trio.testing
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close
from websockets.sync.client import connect

from streamscale.protocols.chat import CloseCode
from streamscale.services.chat.fanout import ChatLimits

from .conftest import open_chat


def slow_client(url: str, joined: trio.Event, resume: threading.Event,
                ) -> tuple[int, Close | None]:
    """Join, read nothing until `resume`, then read to the end: the batch frames read and
    the close frame the server sent (None: a bare TCP close)."""
    with connect(url, compression=None, ping_interval=None, max_queue=4,
                 open_timeout=10) as ws:
        ws.send(json.dumps({"v": 1, "type": "join", "room": "s1"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "joined"
        trio.from_thread.run_sync(joined.set)
        assert resume.wait(30)
        batches = 0
        try:
            while True:
                batches += json.loads(ws.recv(timeout=30))["type"] == "batch"
        except ConnectionClosed as exc:
            return batches, exc.rcvd


@pytest.fixture
def frozen_clock() -> trio.testing.MockClock:
    """Trio time moves only when the test jumps it: the gateway gives up on the reader
    (close_timeout_s) exactly when the test says, however long the threads take."""
    return trio.testing.MockClock()


async def test_a_slow_reader_gets_the_1013_close_ahead_of_its_backlog(
    frozen_clock: trio.testing.MockClock,
) -> None:
    limits = ChatLimits(send_queue_frames=4, viewer_cap_per_s=0)
    joined, resume = trio.Event(), threading.Event()
    result: list[tuple[int, Close | None]] = []

    async def client(url: str) -> None:
        result.append(await trio.to_thread.run_sync(slow_client, url, joined, resume))

    async with open_chat(limits) as chat, trio.open_nursery() as nursery:
        nursery.start_soon(client, chat.url)
        try:
            await joined.wait()
            [peer] = chat.gateway.peers
            sent = 0
            while not chat.gateway.stats.dropped_slow:  # fill its kernel buffers, then queue
                assert sent < 10_000, "never dropped"
                chat.gateway.deliver("s1", [{"id": sent, "pad": "x" * 3000}])
                chat.gateway.flush()
                sent += 1
                await trio.lowlevel.checkpoint()
            assert not peer.backlog  # the close frame is in the kernel already
            # The gateway waits close_timeout_s for the client's EOF, which a reader who does
            # not read never sends, then closes the socket; only then does the client read.
            await trio.testing.wait_all_tasks_blocked()
            frozen_clock.jump(limits.close_timeout_s)
            await trio.testing.wait_all_tasks_blocked()
            assert chat.gateway.stats.closes[CloseCode.TRY_AGAIN_LATER] == 1
        finally:
            resume.set()
    [(batches, close)] = result
    assert close is not None, "no close frame: the connection just ended"
    assert (close.code, close.reason) == (CloseCode.TRY_AGAIN_LATER,
                                          "too slow: send queue overflowed")
    assert batches < sent  # the queued backlog was discarded, not sent before the close
