"""The TCP fault proxy over real loopback sockets; time is trio's MockClock (autojump),
so latencies, bandwidth caps and timeouts are exact and cost no wall time."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from chaos.proxy import FaultProxy, Faults, open_proxy


@dataclass
class Upstream:
    """An echo server that counts its connections and records what each read returned."""

    port: int = 0
    connections: int = 0
    reads: list[bytes] = field(default_factory=list)

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        async with stream:
            try:
                while data := await stream.receive_some(65536):
                    self.reads.append(data)
                    await stream.send_all(data)
            except trio.BrokenResourceError:
                pass  # the proxy reset us


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> Upstream:
    server = Upstream()
    listeners = await nursery.start(trio.serve_tcp, server.handle, 0)
    server.port = listeners[0].socket.getsockname()[1]
    return server


@pytest.fixture
async def proxy(nursery: trio.Nursery, upstream: Upstream) -> FaultProxy:
    return await open_proxy(nursery, "127.0.0.1", upstream.port)


async def _receive_exactly(stream: trio.SocketStream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await stream.receive_some(65536)
        assert chunk, f"EOF after {len(data)} of {n} bytes"
        data += chunk
    return data


async def _round_trip(proxy: FaultProxy, payload: bytes) -> float:
    """Send `payload` through the proxy to the echo server; the time until it is back."""
    with trio.fail_after(600):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.port) as stream:
            start = trio.current_time()
            await stream.send_all(payload)
            assert await _receive_exactly(stream, len(payload)) == payload
            return trio.current_time() - start


async def test_clean_wire_forwards_both_ways_and_half_close(
    proxy: FaultProxy, upstream: Upstream, autojump_clock: trio.testing.MockClock
) -> None:
    assert await _round_trip(proxy, b"hello" * 1000) == 0
    async with await trio.open_tcp_stream("127.0.0.1", proxy.port) as stream:
        await stream.send_all(b"last words")
        await stream.send_eof()  # the echo server sees EOF through the proxy and closes
        assert await _receive_exactly(stream, 10) == b"last words"
        with trio.fail_after(5):
            assert await stream.receive_some(100) == b""
    assert proxy.stats.bytes_up == proxy.stats.bytes_down == 5010
    assert upstream.connections == 2


async def test_latency_per_direction_adds_up(
    proxy: FaultProxy, autojump_clock: trio.testing.MockClock
) -> None:
    proxy.up = Faults(latency_s=2.0)
    proxy.down = Faults(latency_s=0.5)
    assert await _round_trip(proxy, b"ping") == pytest.approx(2.5)


async def test_jitter_delays_within_bounds_and_keeps_order(
    proxy: FaultProxy, autojump_clock: trio.testing.MockClock
) -> None:
    proxy.down = Faults(latency_s=1.0, jitter_s=3.0)
    async with await trio.open_tcp_stream("127.0.0.1", proxy.port) as stream:
        sent = b""
        for i in range(20):
            start = trio.current_time()
            message = b"%03d" % i
            sent += message
            await stream.send_all(message)
            got = await _receive_exactly(stream, 3)
            assert got == message  # in order, nothing lost
            assert 1.0 <= trio.current_time() - start <= 4.0


async def test_bandwidth_cap_paces_bytes(
    proxy: FaultProxy, autojump_clock: trio.testing.MockClock
) -> None:
    proxy.down = Faults(bandwidth_bytes_per_s=10_000)
    elapsed_s = await _round_trip(proxy, b"x" * 100_000)
    assert elapsed_s == pytest.approx(10.0)  # 100 kB at 10 kB/s


async def test_slicing_cuts_writes_into_small_delayed_pieces(
    proxy: FaultProxy, upstream: Upstream, autojump_clock: trio.testing.MockClock
) -> None:
    proxy.up = Faults(slice_bytes=10, slice_delay_s=0.1)
    elapsed_s = await _round_trip(proxy, b"y" * 100)
    assert upstream.reads == [b"y" * 10] * 10  # the server read ten 10-byte pieces
    assert elapsed_s == pytest.approx(0.9)


async def test_reset_kills_open_connections_and_refuses_new_ones(
    proxy: FaultProxy, upstream: Upstream, autojump_clock: trio.testing.MockClock
) -> None:
    async with await trio.open_tcp_stream("127.0.0.1", proxy.port) as stream:
        await stream.send_all(b"a")
        await _receive_exactly(stream, 1)
        proxy.set_reset()
        with trio.fail_after(5), pytest.raises(trio.BrokenResourceError):
            await stream.receive_some(10)  # ECONNRESET, not a clean EOF
    async with await trio.open_tcp_stream("127.0.0.1", proxy.port) as stream:
        with trio.fail_after(5), pytest.raises(trio.BrokenResourceError):
            await stream.receive_some(10)
    assert proxy.stats.resets == 2 and upstream.connections == 1
    proxy.clear()
    assert await _round_trip(proxy, b"back") == 0


async def test_blackhole_accepts_swallows_and_never_answers(
    proxy: FaultProxy, upstream: Upstream, autojump_clock: trio.testing.MockClock
) -> None:
    proxy.blackhole = True
    async with await trio.open_tcp_stream("127.0.0.1", proxy.port) as stream:
        await stream.send_all(b"anyone there?")
        with trio.move_on_after(60) as waited:
            await stream.receive_some(10)
        assert waited.cancelled_caught  # a minute of silence, the connection still open
    assert upstream.connections == 0
    # an open connection goes silent too, and comes back with the rollback
    proxy.blackhole = False
    async with await trio.open_tcp_stream("127.0.0.1", proxy.port) as stream:
        await stream.send_all(b"1")
        await _receive_exactly(stream, 1)
        proxy.blackhole = True
        await stream.send_all(b"2")
        with trio.move_on_after(60) as waited:
            await stream.receive_some(10)
        assert waited.cancelled_caught
        proxy.clear()
        await stream.send_all(b"3")
        assert await _receive_exactly(stream, 1) == b"3"
    assert proxy.stats.swallowed_bytes == len(b"anyone there?") + 1


def test_bad_faults_are_refused() -> None:
    with pytest.raises(ValueError, match="bandwidth"):
        Faults(bandwidth_bytes_per_s=0)
    with pytest.raises(ValueError, match="delays"):
        Faults(latency_s=-1)
