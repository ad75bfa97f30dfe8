"""Dashboard pages: the session list, the create form, and a session followed live."""

import logging
import math
from typing import Any

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods

import vocabulary
from deliberation.services import BrokerUnavailable, deliberation_start
from deliberation.transcript import build_transcript, phase_cost_text
from sessions_app import accounts, selectors, services
from sessions_app.api.serializers import LISTABLE_STATUSES
from sessions_app.api.throttles import seconds_until_allowed
from sessions_app.models import Status
from sessions_app.snapshots import session_snapshot

from .forms import SessionCreateForm
from .rendering import markdown_html

logger = logging.getLogger(__name__)

PAGE_SIZE = 20
MAX_SEARCH = 200
PHASES = [str(phase) for phase in vocabulary.PHASES]
CONTROL_ACTIONS = ("start", "pause", "resume", "kill", "clarify")


def phase_step(phase: str) -> int:
    """1 for intake ... len(PHASES) for complete: how far along a deliberation is."""
    return PHASES.index(phase) + 1 if phase in PHASES else 1


def phase_label(phase: str) -> str:
    return phase.replace("_", " ").capitalize()


def _page_number(value: str | None) -> int:
    try:
        return max(1, min(int(value or 1), 100_000))
    except ValueError:
        return 1


def _row(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        **summary,
        "created": parse_datetime(summary["created_at"]) if summary.get("created_at") else None,
        "step": phase_step(summary["phase"]),
        "phase_label": phase_label(summary["phase"]),
        "live": summary["status"] in vocabulary.RUNNABLE_STATUSES,
    }


@login_required
@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    """The user's own sessions, newest first, with a status filter and a full-text search."""
    status = request.GET.get("status", "")
    status = status if status in LISTABLE_STATUSES else ""
    search = request.GET.get("q", "").strip()[:MAX_SEARCH]
    number = _page_number(request.GET.get("page"))
    search_error = ""
    try:
        page = selectors.session_list_for_user(
            user=request.user,
            status=status or None,
            q=search or None,
            limit=PAGE_SIZE,
            offset=(number - 1) * PAGE_SIZE,
        )
    except selectors.InvalidListQuery as exc:
        search_error = exc.message
        page = selectors.SessionPage(
            sessions=[], total=0, limit=PAGE_SIZE, offset=0, has_more=False
        )
    pages = max(1, math.ceil(page.total / PAGE_SIZE))
    query = {k: v for k, v in (("status", status), ("q", search)) if v}
    return render(
        request,
        "dashboard/session_list.html",
        {
            "nav": "sessions",
            "sessions": [_row(s) for s in page.sessions],
            "total": page.total,
            "page_number": number,
            "pages": pages,
            "previous_page": number - 1 if number > 1 else None,
            "next_page": number + 1 if page.has_more else None,
            "status": status,
            "search": search,
            "search_error": search_error,
            "query": query,
            "statuses": LISTABLE_STATUSES,
            "phase_count": len(PHASES),
            "vocabulary": vocabulary.for_pages(),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def session_new(request: HttpRequest) -> HttpResponse:
    """Create a session and start its deliberation in one step, then open its page."""
    form = SessionCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # The form and the API share one per-user budget of creates and starts.
        wait = seconds_until_allowed("session_create", f"user{request.user.pk}")
        if wait is not None:
            form.add_error(
                None, f"You are creating sessions too quickly; try again in {math.ceil(wait)} s."
            )
            context = {"nav": "new", "form": form}
            return render(request, "dashboard/session_new.html", context, status=429)
        session, created = services.session_create(
            user=request.user, idempotency_key=form.retry_key(), **form.session_data
        )
        start_wait = (
            seconds_until_allowed("session_start", f"user{request.user.pk}")
            if created or session.status == Status.CREATED
            else None
        )
        if start_wait is not None:
            messages.warning(
                request,
                "Your session is saved; you are starting sessions too quickly, so press Start "
                f"on this page in {math.ceil(start_wait)} s.",
            )
        elif created or session.status == Status.CREATED:
            try:
                deliberation_start(session_id=session.id)
            except BrokerUnavailable as exc:
                logger.warning("Session %s created but not started: %s", session.id, exc.reason)
                messages.error(
                    request,
                    "Your session is saved, but the deliberation could not start: the task "
                    "queue is unavailable. Press Start on this page once it is back.",
                )
            except services.IllegalTransition as exc:
                messages.warning(request, f"The deliberation was not started: {exc}")
        return redirect("dashboard-session", session_id=session.id)
    return render(request, "dashboard/session_new.html", {"nav": "new", "form": form})


@login_required
@require_GET
def session_page(request: HttpRequest, session_id: str) -> HttpResponse:
    """One session: problem, board, transcript, votes, synthesis, costs and its controls."""
    session = selectors.session_get_for_user(user=request.user, session_id=session_id)
    if session is None:
        raise Http404("No such session.")
    # The row, not the hot entry: it is read before the events, so the page never shows a
    # status older than its transcript; the stream brings anything newer.
    detail = session_snapshot(session)
    events = list(selectors.session_events_all(session_id=session.id))
    transcript = build_transcript(detail, events)
    api = f"/api/v1/sessions/{session.id}"
    state = {
        "id": session.id,
        "status": detail["status"],
        "phase": detail["phase"],
        "pause_reason": detail["pause_reason"],
        "pending_clarification": detail["pending_clarification"],
        "last_sequence": transcript.last_sequence,
        "several_sub_problems": transcript.several_sub_problems,
        "urls": {
            "detail": api,
            "stream": f"{api}/stream",
            "synthesis": reverse("dashboard-synthesis", args=[session.id]),
            **{action: f"{api}/{action}" for action in CONTROL_ACTIONS},
        },
    }
    return render(
        request,
        "dashboard/session_detail.html",
        {
            "session": detail,
            "created": session.created_at,
            "transcript": transcript,
            "synthesis_html": markdown_html(transcript.synthesis),
            "state": state,
            "finished": detail["status"] in vocabulary.FINISHED_STATUSES,
            "step": phase_step(detail["phase"]),
            "phase_label": phase_label(detail["phase"]),
            "phase_costs": [
                (phase_label(phase), phase_cost_text(cost))
                for phase, cost in (detail["costs_by_phase"] or {}).items()
            ],
            "phase_count": len(PHASES),
            "vocabulary": vocabulary.for_pages(),
            "export_md": f"{api}/export?format=md",
            "export_json": f"{api}/export?format=json",
        },
    )


@login_required
@require_GET
def synthesis_fragment(request: HttpRequest, session_id: str) -> HttpResponse:
    """The synthesis as sanitised HTML, fetched by the page when the deliberation completes."""
    session = selectors.session_get_for_user(user=request.user, session_id=session_id)
    if session is None:
        raise Http404("No such session.")
    detail = session_snapshot(session)
    transcript = build_transcript(detail, ())
    if not transcript.synthesis:
        # Not in the row yet (it lands with `complete`): read the events that carry it.
        transcript = build_transcript(detail, selectors.session_events_all(session_id=session.id))
    return render(
        request,
        "dashboard/_synthesis.html",
        {"synthesis_html": markdown_html(transcript.synthesis), "transcript": transcript},
    )


@login_required
@require_http_methods(["GET", "POST"])
def account_page(request: HttpRequest) -> HttpResponse:
    """The account: download everything (the API's ZIP), or delete the account with its data."""
    error = ""
    if request.method == "POST":
        username = request.user.get_username()
        if request.POST.get("confirm", "") != username:
            error = "Type your username exactly to delete the account. Nothing was deleted."
        else:
            accounts.account_delete(user=request.user)  # type: ignore[arg-type]
            logout(request)
            messages.success(request, f"Account {username} and all its sessions are being deleted.")
            return redirect("login")
    sessions = selectors.sessions_visible_to(request.user).count()  # type: ignore[arg-type]
    return render(
        request,
        "dashboard/account.html",
        {"nav": "account", "sessions": sessions, "error": error},
        status=400 if error else 200,
    )
