"""Control of deliberations: each action is one status change in the store, plus queueing."""

import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import RedisError

from bo1site.celery import app as celery_app
from sessions_app.models import DeliberationSession, PauseReason, Status
from sessions_app.services import IllegalTransition, NewEvent, session_transition
from vocabulary import UNFINISHED_STATUSES, EventType

from .tasks import run_deliberation

logger = logging.getLogger(__name__)

BROKER_ERRORS = (OperationalError, KombuError, RedisError, OSError, TimeoutError)
BROKER_CHECK_TIMEOUTS = {"socket_connect_timeout": 2, "socket_timeout": 2}


class BrokerUnavailable(Exception):
    """The task queue cannot be reached; nothing was changed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"task queue unavailable: {reason}")


def broker_check() -> None:
    """Raise BrokerUnavailable unless the broker answers within a couple of seconds."""
    try:
        # The PING must not wait out the transport's own socket timeout when packets vanish.
        with celery_app.connection_for_write(transport_options=BROKER_CHECK_TIMEOUTS) as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0.2, timeout=2
            )
            connection.default_channel.client.ping()
    except BROKER_ERRORS as exc:
        logger.error("Task queue unavailable: %s", exc)
        raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc


def enqueue_run(session_id: str) -> None:
    """Publish the run task; failures are logged (reconcile requeues a queued session)."""
    try:
        run_deliberation.apply_async(args=[session_id], retry=False)
    except BROKER_ERRORS as exc:
        logger.error("Could not queue session %s (reconcile will retry): %s", session_id, exc)


def _queue(session_id: str, *, expected: tuple[str, ...], events: list[NewEvent], **kw: Any):
    broker_check()
    with transaction.atomic():
        session = session_transition(
            session_id=session_id, to=Status.QUEUED, expected=expected, events=events, **kw
        )
        transaction.on_commit(lambda: enqueue_run(session_id))
    return session


def deliberation_start(*, session_id: str) -> DeliberationSession:
    """created → queued, and the worker is asked to run it once that is committed."""
    return _queue(session_id, expected=(Status.CREATED,), events=[])


def deliberation_pause(*, session_id: str) -> DeliberationSession:
    """running → paused (reason user); the worker stops at its next call boundary."""
    return session_transition(
        session_id=session_id,
        to=Status.PAUSED,
        expected=(Status.RUNNING,),
        pause_reason=PauseReason.USER,
        events=[NewEvent(EventType.PAUSED, {"reason": PauseReason.USER})],
    )


def deliberation_resume(
    *, session_id: str, extra_budget: Decimal | None = None
) -> DeliberationSession:
    """paused → queued; after a budget pause the budget grows by one allowance (or extra_budget)."""
    session = DeliberationSession.objects.filter(pk=session_id).first()
    fields: dict[str, Any] = {}
    if session is not None and session.pause_reason == PauseReason.CLARIFICATION:
        raise IllegalTransition(session_id, "paused (awaiting clarification)", Status.QUEUED)
    if session is not None and session.pause_reason == PauseReason.BUDGET:
        allowance = extra_budget or Decimal(settings.BO1_MAX_COST_PER_SESSION)
        fields["cost_limit"] = session.total_cost + allowance
    elif extra_budget:
        current = session.cost_limit if session else None
        fields["cost_limit"] = (
            current or Decimal(settings.BO1_MAX_COST_PER_SESSION)
        ) + extra_budget
    return _queue(
        session_id,
        expected=(Status.PAUSED,),
        events=[
            NewEvent(EventType.RESUMED, {"cost_limit": str(fields["cost_limit"])} if fields else {})
        ],
        fields=fields,
    )


def deliberation_kill(*, session_id: str, reason: str = "") -> DeliberationSession:
    """Any unfinished status → killed; the worker stops at its next call boundary, silently."""
    return session_transition(
        session_id=session_id,
        to=Status.KILLED,
        expected=UNFINISHED_STATUSES,
        events=[NewEvent(EventType.KILLED, {"reason": reason or "killed by user"})],
    )


def deliberation_clarify(*, session_id: str, answer: str) -> DeliberationSession:
    """Answer the board's pending question and requeue: paused (clarification) → queued."""
    session = DeliberationSession.objects.filter(pk=session_id).first()
    if session is None or not (
        session.status == Status.PAUSED and session.pause_reason == PauseReason.CLARIFICATION
    ):
        current = session.status if session else "missing"
        raise IllegalTransition(session_id, current, "clarified")
    question = session.clarification_question
    context = dict(session.problem_context or {})
    context["clarifications"] = [
        *context.get("clarifications", []),
        {"question": question, "answer": answer},
    ]
    return _queue(
        session_id,
        expected=(Status.PAUSED,),
        events=[
            NewEvent(EventType.CLARIFICATION_ANSWERED, {"question": question, "answer": answer})
        ],
        fields={"problem_context": context},
    )
