"""Fixtures of the WS-Management listener tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from wsman_testkit import PASSWORD, USER, RecordingHost

from runbook_lib.simulator.wsman import WSManServer


@pytest.fixture
def host() -> RecordingHost:
    return RecordingHost()


@pytest.fixture
def start_server() -> Iterator[Callable[..., WSManServer]]:
    """Start listeners with test defaults; every one is stopped at teardown, even when the test fails."""
    servers: list[WSManServer] = []

    def start(handler, **options) -> WSManServer:
        options.setdefault("credentials", [(USER, PASSWORD)])
        server = WSManServer(handler, **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
