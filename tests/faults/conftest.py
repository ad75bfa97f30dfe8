"""Fixtures of the fault suite: proxies in front of PostgreSQL and Redis, real worker processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis as redis_lib

from tests.faults.proxy import FaultProxy
from tests.faults.wiring import (
    REAL_REDIS_URL,
    broker_of_this_run,
    postgres_proxy_for_tests,
    redis_proxy_for_tests,
)


@pytest.fixture(autouse=True)
def run_broker() -> Iterator[str]:
    """Tasks published by this process go to this run's broker database."""
    with broker_of_this_run() as url:
        yield url


@pytest.fixture
def redis_proxy() -> Iterator[FaultProxy]:
    proxy = redis_proxy_for_tests()
    yield proxy
    proxy.stop()


@pytest.fixture
def pg_proxy() -> Iterator[FaultProxy]:
    proxy = postgres_proxy_for_tests()
    yield proxy
    proxy.stop()


@pytest.fixture
def broker_client(run_broker: str) -> Iterator[redis_lib.Redis]:
    """A direct client of this run's broker database (never through a proxy), emptied first."""
    client = redis_lib.Redis.from_url(run_broker)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def direct_redis() -> Iterator[redis_lib.Redis]:
    """A direct client of this run's cache database: what Redis really holds."""
    client = redis_lib.Redis.from_url(REAL_REDIS_URL)
    yield client
    client.close()
