"""The seed's verification flow, end to end against the configured PostgreSQL and Redis."""

import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model

from . import selectors, services
from .cache import SessionCache
from .models import DeliberationSession, Phase, Status

logger = logging.getLogger(__name__)

SYNTHESIS = "## Executive summary\nVerification synthesis: the store keeps what it is given."
COST = Decimal("0.042100")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    session_id: str | None = None
    username: str | None = None
    checks: list[Check] = field(default_factory=list)
    kept: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


class Verifier:
    """Runs each check in order; stops at the first failure (later ones would only echo it)."""

    def __init__(self, keep: bool = False, on_check: Callable[[Check], None] | None = None):
        self.report = Report(kept=keep)
        self.keep = keep
        self.on_check = on_check or (lambda check: None)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        item = Check(name=name, ok=bool(ok), detail=detail)
        self.report.checks.append(item)
        self.on_check(item)
        return item.ok

    def run(self) -> Report:
        user_model = get_user_model()
        username = f"verify-{uuid.uuid4().hex[:12]}"
        self.report.username = username
        user = None
        try:
            user = user_model.objects.create_user(username=username)
            self._flow(user)
        except Exception as exc:  # a store that fails mid-flow is a failed check, not a traceback
            logger.exception("Verification stopped by an error")
            self.check("no unexpected error", False, f"{type(exc).__name__}: {exc}")
        finally:
            if user is not None and not self.keep:
                self._clean_up(user)
        return self.report

    def _flow(self, user: Any) -> None:
        session, _ = services.session_create(
            user=user, problem_statement="Verification: should the store keep this session?"
        )
        sid = session.id
        self.report.session_id = sid
        row = DeliberationSession.objects.filter(pk=sid).first()
        if not self.check("created session is in PostgreSQL", row is not None, sid):
            return
        hot = SessionCache.get(sid)
        ttl = SessionCache.ttl(sid)
        limit = int(settings.SESSION_CACHE_TTL)
        if not self.check("created session is in Redis", hot is not None and hot["id"] == sid):
            return
        if not self.check(
            "Redis entry expires within SESSION_CACHE_TTL",
            ttl is not None and 0 < ttl <= limit,
            f"ttl={ttl}s, limit={limit}s",
        ):
            return

        services.session_transition(session_id=sid, to=Status.QUEUED)
        services.session_transition(
            session_id=sid,
            to=Status.RUNNING,
            fields={"phase": Phase.DECOMPOSITION, "round_number": 1},
        )
        if not self._both_say(
            sid, "running", status=Status.RUNNING, phase=Phase.DECOMPOSITION, round_number=1
        ):
            return

        services.session_transition(
            session_id=sid,
            to=Status.COMPLETED,
            fields={
                "phase": Phase.COMPLETE,
                "synthesis_text": SYNTHESIS,
                "final_recommendation": "Keep it.",
                "total_cost": COST,
                "total_tokens": 1234,
            },
        )
        if not self._both_say(
            sid, "completed with synthesis and cost", status=Status.COMPLETED, cost=COST
        ):
            return

        SessionCache.purge(sid)
        self.check(
            "Redis keys deleted", not SessionCache.keys_for(sid) and SessionCache.get(sid) is None
        )
        page = selectors.session_list_for_user(user=user)
        listed = [s for s in page.sessions if s["id"] == sid]
        if not self.check(
            "list still shows it from PostgreSQL",
            len(listed) == 1 and listed[0]["status"] == Status.COMPLETED and page.total == 1,
            f"total={page.total}",
        ):
            return
        detail = selectors.session_detail_for_user(user=user, session_id=sid)
        self.check(
            "detail answers from PostgreSQL",
            detail is not None and detail["synthesis"] == SYNTHESIS,
        )
        refilled = SessionCache.get(sid)
        self.check(
            "detail refilled Redis",
            refilled is not None and refilled["status"] == Status.COMPLETED,
        )

    def _both_say(
        self,
        sid: str,
        label: str,
        *,
        status: str,
        phase: str | None = None,
        round_number: int | None = None,
        cost: Decimal | None = None,
    ) -> bool:
        row = DeliberationSession.objects.get(pk=sid)
        hot = SessionCache.get(sid) or {}
        pg_ok = row.status == status
        redis_ok = hot.get("status") == status
        if phase is not None:
            pg_ok &= row.phase == phase and row.round_number == round_number
            redis_ok &= hot.get("phase") == phase and hot.get("round_number") == round_number
        if cost is not None:
            pg_ok &= row.total_cost == cost and row.synthesis_text == SYNTHESIS
            redis_ok &= Decimal(hot.get("total_cost", "0")) == cost
            redis_ok &= hot.get("synthesis") == SYNTHESIS
        ok_pg = self.check(f"{label} in PostgreSQL", pg_ok, f"status={row.status}")
        ok_redis = self.check(f"{label} in Redis", redis_ok, f"status={hot.get('status')}")
        return ok_pg and ok_redis

    def _clean_up(self, user: Any) -> None:
        try:
            for sid in DeliberationSession.objects.filter(user=user).values_list("id", flat=True):
                services.session_purge(session_id=sid)
            user.delete()
        except Exception:  # cleanup is best effort; the report already says what failed
            logger.exception("Verification cleanup failed")


def verify_session_persistence(
    *, keep: bool = False, on_check: Callable[[Check], None] | None = None
) -> Report:
    """Run the verification; `keep` leaves the throwaway user and session in place."""
    return Verifier(keep=keep, on_check=on_check).run()
