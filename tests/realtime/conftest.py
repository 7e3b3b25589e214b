"""Fixtures of the socket tests: the web process on loopback and the clients a test connects."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.settings import Settings
from tests.realtime.live import LiveServer, Peer, live_server


@pytest.fixture
async def server(database: Settings) -> AsyncIterator[LiveServer]:
    """The web process, serving the test's database."""
    async with live_server(database) as running:
        yield running


@pytest.fixture
async def peers() -> AsyncIterator[list[Peer]]:
    """Clients created by a test, all disconnected at the end."""
    made: list[Peer] = []
    yield made
    for peer in made:
        await peer.close()
