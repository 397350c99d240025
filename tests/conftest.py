from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from streamscale.testing import RunningPlatform, make_config, running_platform

POSTGRES_URL = os.environ.get(
    "STREAMSCALE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[RunningPlatform]:
    async with running_platform(make_config(tmp_path)) as running:
        yield running


@pytest.fixture
async def api(platform: RunningPlatform) -> AsyncIterator[httpx.AsyncClient]:
    base = platform.api_url.removesuffix("/api")
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        yield client
