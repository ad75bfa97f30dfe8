"""Fixtures of the security suite: those of the fault suite (proxies, the run's broker) and a
session owned by someone else."""

import pytest

from tests.factories import SessionFactory
from tests.faults.conftest import (  # noqa: F401 (fixtures are found by name)
    broker_client,
    direct_redis,
    pg_proxy,
    redis_proxy,
    run_broker,
)


@pytest.fixture
def others_session(other_user):
    """A session of another user ("mallory"): every endpoint must pretend it does not exist."""
    return SessionFactory(user=other_user)
