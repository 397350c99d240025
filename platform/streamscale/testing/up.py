"""`streamscale up` as a user runs it, in a child process on free ports, for tests that
need the platform in another process (the CLI's own tests, `--target` load runs).

Every listener on port 0; the URLs the child prints are parsed from its stdout. Password
hashing is cheapened (8 MiB, one pass) so sign-ups do not dominate short runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import trio

STREAMSCALE = str(Path(sys.executable).parent / "streamscale")


def up_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without STREAMSCALE_* settings, plus free ports and a
    data folder for a child `streamscale up`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSCALE_")}
    env.update({
        "STREAMSCALE_DATA_DIR": str(data_dir),
        "STREAMSCALE_GATEWAY__PORT": "0",
        "STREAMSCALE_MEDIA__RTMP_PORT": "0",
        "STREAMSCALE_ORIGIN__PORT": "0",
        "STREAMSCALE_CHAT__PORT": "0",
        "STREAMSCALE_CDN__EDGES": '[{"name": "a1", "cdn": "a"}, {"name": "b1", "cdn": "b"}]',
        "STREAMSCALE_AUTH__PASSWORD_MEMORY_KIB": "8192",
        "STREAMSCALE_AUTH__PASSWORD_TIME_COST": "1",
        **extra,
    })
    return env


@asynccontextmanager
async def streamscale_up(
    work_dir: Path, *args: str, command: tuple[str, ...] = (STREAMSCALE,),
    env: Mapping[str, str] | None = None, ready_s: float = 30.0,
) -> AsyncIterator[tuple[trio.Process, dict[str, str], list[str]]]:
    """Start `streamscale up`, wait for its printed URLs, yield (process, urls, lines);
    the child is killed on the way out if it is still running. `urls` maps each printed
    label (api, openapi, rtmp, hls, ws, ...) to its URL."""
    errors = work_dir / "up.stderr"
    with errors.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        proc = await trio.lowlevel.open_process(
            [*command, "up", *args], env=dict(env or up_env(work_dir / "var")),
            stdout=subprocess.PIPE, stderr=stderr,
        )
    assert proc.stdout is not None
    lines: list[str] = []
    urls: dict[str, str] = {}
    buffer = b""
    try:
        with trio.fail_after(ready_s):
            while not lines or not lines[-1].startswith("streamscale: ready"):
                chunk = await proc.stdout.receive_some()
                assert chunk, (f"streamscale up exited early: {lines}\n"
                               f"{errors.read_text(errors='replace')[-3000:]}")
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for raw in complete:
                    line = raw.decode()
                    lines.append(line)
                    parts = line.split()
                    if len(parts) == 3 and "://" in parts[2]:
                        urls[parts[1]] = parts[2]
        yield proc, urls, lines
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
