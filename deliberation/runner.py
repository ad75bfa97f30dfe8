"""Runs one deliberation in a worker: connects the engine's events to the session store.

Every engine step is written to PostgreSQL in one transaction (its events with the next sequence
numbers, the checkpoint, the live fields), then mirrored to the Redis stream and hot entry.
When PostgreSQL refuses a write, it is kept in an ordered outbox (in memory, mirrored to Redis)
and applied, in order and exactly once, when PostgreSQL answers again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, close_old_connections, connection
from django.utils import timezone

from sessions_app.cache import SessionCache
from sessions_app.models import DeliberationSession
from sessions_app.services import (
    IllegalTransition,
    NewEvent,
    session_transition,
)
from vocabulary import EVENT_PHASES, RUNNABLE_STATUSES, EventType, PauseReason, Phase, Status

from .engine import Deliberation, Outcome, ProviderError, make_provider
from .lease import Lease
from .outbox import Outbox, OutboxOp

logger = logging.getLogger(__name__)


def provider_for_settings() -> Any:
    """The configured model provider (BO1_LLM_PROVIDER and the SDKs' own variables)."""
    name = settings.BO1_LLM_PROVIDER
    api_key = base_url = None
    if name == "anthropic":
        api_key, base_url = (
            os.environ.get("ANTHROPIC_API_KEY"),
            os.environ.get("ANTHROPIC_BASE_URL"),
        )
    elif name == "openai":
        api_key, base_url = os.environ.get("OPENAI_API_KEY"), os.environ.get("OPENAI_BASE_URL")
    return make_provider(
        name,
        models=settings.BO1_MODELS or None,
        api_key=api_key,
        base_url=base_url,
        timeout=settings.BO1_LLM_TIMEOUT,
        max_retries=settings.BO1_LLM_MAX_RETRIES,
        offline_latency_ms=settings.BO1_OFFLINE_LATENCY_MS,
    )


class LiveView:
    """The session's live fields, advanced by each event the engine emits."""

    def __init__(self, session: DeliberationSession) -> None:
        self.phase = session.phase
        self.round_number = session.round_number
        self.personas: list[dict[str, Any]] = list(session.personas or [])
        self.contribution_count = session.contribution_count
        self.clarification_question = ""

    def advance(self, event_type: str, data: dict[str, Any]) -> None:
        self.phase = EVENT_PHASES.get(event_type, self.phase)
        if event_type in (EventType.CONTRIBUTION, EventType.ROUND_STARTED) and isinstance(
            data.get("round"), int
        ):
            self.round_number = max(self.round_number, data["round"])
        if event_type == EventType.CONTRIBUTION:
            self.contribution_count += 1
        elif event_type == EventType.PERSONA_SELECTED:
            persona: dict[str, Any] = {
                key: data.get(key)
                for key in ("persona_code", "persona_name", "archetype", "domain", "expertise")
                if key in data
            }
            persona["sub_problem_index"] = data.get("sub_problem_index")
            self.personas.append(persona)
        elif event_type == EventType.CLARIFICATION_REQUESTED:
            self.clarification_question = str(data.get("question") or "")

    def fields(self, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "round_number": self.round_number,
            "personas": self.personas,
            "contribution_count": self.contribution_count,
            "total_cost": str(Decimal(str(state.get("total_cost", "0")))),
            "total_tokens": int(state.get("total_tokens", 0)),
            "costs_by_phase": _json_safe(state.get("costs_by_phase", {})),
            "last_activity_at": timezone.now().isoformat(),
        }


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


class SessionHost:
    """The engine's window on the store: emit events, save checkpoints, answer should-stop."""

    def __init__(self, session: DeliberationSession, lease: Lease, outbox: Outbox) -> None:
        self.session_id = session.id
        self.lease = lease
        self.outbox = outbox
        self.live = LiveView(session)
        checkpoint = session.checkpoint or {}
        self.emitted = int(checkpoint.get("emitted", 0))
        self.pending: list[NewEvent] = []
        self.stopped: str | None = None  # "pause" or "kill" once the store says so

    # -- EngineHost -------------------------------------------------------------------------
    def emit(self, event_type: str, data: dict[str, Any]) -> None:
        self.emitted += 1
        data = _json_safe(data)
        self.pending.append(NewEvent(event_type, data, idempotency_key=f"engine:{self.emitted}"))
        self.live.advance(event_type, data)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        fields = self.live.fields(state)
        fields["checkpoint"] = {"engine": _json_safe(state), "emitted": self.emitted}
        events, self.pending = self.pending, []
        self.outbox.put(OutboxOp.progress(events, fields))
        if not self.outbox.flush() and self.outbox.last_refusal == "status":
            self.stopped = self._status_stop() or "kill"
        self._mirror_live(fields)

    def should_stop(self) -> str | None:
        if self.stopped:
            return self.stopped
        if not self.lease.held():
            logger.warning("Lease on session %s lost; stopping here", self.session_id)
            self.stopped = "kill"
            return self.stopped
        self.stopped = self._status_stop()
        return self.stopped

    # -- helpers ----------------------------------------------------------------------------
    def _status_stop(self) -> str | None:
        try:
            close_old_connections()
            status = (
                DeliberationSession.objects.filter(pk=self.session_id)
                .values_list("status", flat=True)
                .first()
            )
        except (DatabaseError, InterfaceError):
            # PostgreSQL is away: keep deliberating, the outbox keeps the writes. The broken
            # connection must go, or the next write fails on it with InterfaceError.
            with contextlib.suppress(DatabaseError, InterfaceError):
                connection.close()
            return None
        if status == Status.PAUSED:
            return "pause"
        if status != Status.RUNNING:
            return "kill"
        return None

    def _mirror_live(self, fields: dict[str, Any]) -> None:
        """While PostgreSQL lags behind, the hot entry still shows the live progress."""
        if not self.outbox.pending:
            return
        SessionCache.update_live(
            self.session_id,
            {
                "phase": fields["phase"],
                "round_number": fields["round_number"],
                "contributions": fields["contribution_count"],
                "total_cost": fields["total_cost"],
                "total_tokens": fields["total_tokens"],
                "last_activity_at": fields["last_activity_at"],
                "updated_at": fields["last_activity_at"],
            },
        )


def _claim(session_id: str) -> DeliberationSession | None:
    """queued → running (or a running session whose worker died); None when not runnable."""
    session = DeliberationSession.objects.filter(pk=session_id).first()
    if session is None or session.status not in RUNNABLE_STATUSES:
        logger.info("Session %s is not runnable (%s); nothing to do", session_id, session)
        return None
    if session.status == Status.QUEUED:
        try:
            session = session_transition(
                session_id=session_id, to=Status.RUNNING, expected=(Status.QUEUED,)
            )
        except IllegalTransition:
            return None
    else:
        logger.info("Picking up session %s from its last checkpoint", session_id)
    return session


def run_session(session_id: str) -> str:
    """Run (or continue) one session's deliberation; returns what became of it."""
    lease = Lease(session_id)
    if not lease.acquire():
        logger.info("Session %s is being run by another worker", session_id)
        return "busy"
    outbox = Outbox(session_id)
    try:
        outbox.flush()  # writes a previous worker kept but could not make
        session = _claim(session_id)
        if session is None:
            return "skipped"
        host = SessionHost(session, lease, outbox)
        return _deliberate(session, host, outbox)
    finally:
        lease.release()


def _deliberate(session: DeliberationSession, host: SessionHost, outbox: Outbox) -> str:
    checkpoint = (session.checkpoint or {}).get("engine")
    context = session.problem_context or {}
    answers = [c.get("answer", "") for c in context.get("clarifications", []) if c.get("answer")]
    cost_limit = session.cost_limit or Decimal(settings.BO1_MAX_COST_PER_SESSION)
    try:
        engine = Deliberation(
            problem_statement=session.problem_statement,
            problem_context=context,
            provider=provider_for_settings(),
            host=host,
            max_rounds=session.max_rounds,
            max_cost=cost_limit,
            checkpoint=checkpoint,
            clarification_answers=answers,
        )
        outcome = engine.run()
    except ProviderError as exc:
        logger.warning("Session %s failed: %s (%s)", session.id, exc.code, exc.message)
        return _finish(
            outbox, host, Status.FAILED, error={"code": exc.code, "message": exc.message}
        )
    except Exception as exc:  # an engine bug must fail the session, not leave it running
        logger.exception("Session %s failed unexpectedly", session.id)
        message = f"{type(exc).__name__}: {exc}"[:500]
        return _finish(
            outbox, host, Status.FAILED, error={"code": "internal_error", "message": message}
        )
    return _conclude(outcome, host, outbox)


def _conclude(outcome: Outcome, host: SessionHost, outbox: Outbox) -> str:
    if outcome.status == "completed":
        return _finish(
            outbox,
            host,
            Status.COMPLETED,
            fields={
                "phase": Phase.COMPLETE,
                "synthesis_text": outcome.synthesis_text,
                "final_recommendation": outcome.final_recommendation,
                "total_cost": str(outcome.total_cost),
                "total_tokens": outcome.total_tokens,
            },
        )
    if outcome.status == "paused" and outcome.pause_reason in (
        PauseReason.BUDGET,
        PauseReason.CLARIFICATION,
    ):
        data: dict[str, Any] = {"reason": outcome.pause_reason}
        fields: dict[str, Any] = {}
        if outcome.pause_reason == PauseReason.CLARIFICATION:
            data["question"] = outcome.clarification_question
            fields["clarification_question"] = outcome.clarification_question or ""
        else:
            data["total_cost"] = str(outcome.total_cost)
        return _finish(outbox, host, Status.PAUSED, pause_reason=outcome.pause_reason,
                       events=[NewEvent(EventType.PAUSED, data)], fields=fields)  # fmt: skip
    # Paused by the user or killed: the control API already changed the status and said so.
    _drain(outbox)
    logger.info("Session %s stopped at a call boundary (%s)", host.session_id, outcome.status)
    return outcome.status


def _finish(
    outbox: Outbox,
    host: SessionHost,
    status: str,
    *,
    pause_reason: str = "",
    events: list[NewEvent] | None = None,
    fields: dict[str, Any] | None = None,
    error: dict[str, str] | None = None,
) -> str:
    """Queue the final transition behind every kept write, then apply them all in order."""
    all_events = list(host.pending) + list(events or [])
    host.pending = []
    final_fields = dict(fields or {})
    if error is not None:
        final_fields["error"] = error
        all_events.append(NewEvent(EventType.ERROR, error))
    outbox.put(OutboxOp.transition(status, pause_reason, all_events, final_fields))
    _drain(outbox)
    return status


def _drain(outbox: Outbox) -> None:
    """Apply kept writes until PostgreSQL takes them or patience runs out (then reconcile will)."""
    deadline = time.monotonic() + settings.BO1_OUTBOX_PATIENCE
    delay = 0.2
    while not outbox.flush():
        if outbox.last_refusal == "status" or time.monotonic() > deadline:
            break
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
    if outbox.pending and outbox.last_refusal != "status":
        logger.error(
            "Session %s: %d writes kept for later (PostgreSQL unavailable)",
            outbox.session_id,
            len(outbox.pending),
        )
