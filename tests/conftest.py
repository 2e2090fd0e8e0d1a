"""Shared fixtures: a real redis-server on a free port (no mocks), and the repository's paths; the
Hypothesis profile every property test runs with."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import structlog
from hypothesis import HealthCheck, settings

from bus.embedded_redis import EmbeddedRedis

# Property tests check what is generated, not how fast: on a loaded machine (CI on 2 cores, several
# suites at once) slow generation or a slow example must not fail them.
settings.register_profile("loaded", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("loaded")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test an old build: an extension older than its source would run instead of it."""
    from ingest.compiled import problem

    if (said := problem()) is not None:
        pytest.exit(said, returncode=2)


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Each test starts with the logging of the one before it undone: `ingest.logs.configure` (the
    CLI's commands call it) writes to the ``sys.stderr`` of that moment, a stream pytest's capture
    closes after the test, and the next test's log lines would fail on it."""
    config, root = structlog.get_config(), logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.contextvars.clear_contextvars()


ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()
