"""The operators' view of sessions: fast on a million rows, read-only where it matters."""

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from . import retention, services
from .models import DeliberationSession, SessionEvent, Status

INLINE_EVENTS = 100
COUNT_CAP = 10_000
# Large columns the change list never shows: a page of 50 rows should not carry 50 checkpoints.
LIST_DEFERRED = (
    "checkpoint",
    "problem_context",
    "personas",
    "costs_by_phase",
    "synthesis_text",
    "final_recommendation",
    "clarification_question",
    "error",
)


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows, so a page of a million-row table never scans them all."""

    @cached_property
    def count(self) -> int:
        query = self.object_list
        if not isinstance(query, QuerySet):
            return len(query)
        if not query.query.where:
            # Unfiltered: the planner's estimate is good enough for page links.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE relname = %s",
                    [query.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] and row[0] > COUNT_CAP:
                return int(row[0])
        return query.values("pk")[: COUNT_CAP + 1].count()


class SessionChangeList(ChangeList):
    """The change list's rows without the large columns it never displays."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet:
        return super().get_queryset(request, exclude_parameters).defer(*LIST_DEFERRED)


@admin.register(DeliberationSession)
class DeliberationSessionAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "status", "phase", "round_number", "total_cost", "created_at")
    list_filter = (
        "status",
        "phase",
        "legal_hold",
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("=id", "problem_statement", "user__username", "=user__email")
    list_select_related = ("user",)
    list_per_page = 50
    show_full_result_count = False
    paginator = CappedCountPaginator
    date_hierarchy = None
    ordering = ("-created_at",)
    raw_id_fields = ("user",)
    actions = ("refresh_hot_cache", "mark_deleted", "place_legal_hold", "release_legal_hold")
    readonly_fields = (
        "id",
        "user",
        "status",
        "status_changed_at",
        "pause_reason",
        "phase",
        "round_number",
        "total_cost",
        "total_tokens",
        "costs_by_phase",
        "personas",
        "contribution_count",
        "clarification_question",
        "synthesis_text",
        "final_recommendation",
        "error",
        "last_sequence",
        "created_at",
        "updated_at",
        "started_at",
        "completed_at",
        "last_activity_at",
        "legal_hold",
        "legal_hold_by",
        "legal_hold_at",
        "recent_events",
    )
    fieldsets = (
        (None, {"fields": ("id", "user", "problem_statement", "problem_context", "max_rounds")}),
        (
            "Progress",
            {
                "fields": (
                    "status",
                    "status_changed_at",
                    "pause_reason",
                    "phase",
                    "round_number",
                    "personas",
                    "contribution_count",
                    "clarification_question",
                    "error",
                )
            },
        ),
        ("Costs", {"fields": ("total_cost", "total_tokens", "costs_by_phase")}),
        ("Outcome", {"fields": ("synthesis_text", "final_recommendation")}),
        (
            "Timestamps",
            {
                "fields": (
                    "created_at",
                    "updated_at",
                    "started_at",
                    "completed_at",
                    "last_activity_at",
                )
            },
        ),
        ("Retention", {"fields": ("legal_hold", "legal_hold_by", "legal_hold_at")}),
        ("Transcript", {"fields": ("last_sequence", "recent_events")}),
    )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return SessionChangeList

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # sessions are created through the API or the dashboard

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the store's services own every write; operators inspect

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # soft delete only: use the "mark deleted" action

    @admin.display(description=f"Last {INLINE_EVENTS} events")
    def recent_events(self, obj: DeliberationSession) -> str:
        events = list(
            SessionEvent.objects.filter(session=obj).order_by("-sequence")[:INLINE_EVENTS]
        )
        if not events:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            (
                (e.sequence, e.created_at.strftime("%Y-%m-%d %H:%M:%S"), e.event_type,
                 json.dumps(e.data, ensure_ascii=False)[:500])
                for e in reversed(events)
            ),
        )  # fmt: skip
        return format_html(
            "<table><thead><tr><th>#</th><th>at</th><th>event</th><th>data</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    @admin.action(description="Refresh hot cache (rewrite the Redis entry from PostgreSQL)")
    def refresh_hot_cache(self, request: HttpRequest, queryset: QuerySet) -> None:
        ids = list(queryset.values_list("id", flat=True))
        for session_id in ids:
            services.session_cache_refresh(session_id=session_id)
        self.message_user(request, f"Refreshed {len(ids)} hot entries.", messages.SUCCESS)

    @admin.action(description="Mark deleted (soft delete; kills unfinished ones)")
    def mark_deleted(self, request: HttpRequest, queryset: QuerySet) -> None:
        ids = list(queryset.exclude(status=Status.DELETED).values_list("id", flat=True))
        for session_id in ids:
            services.session_soft_delete(session_id=session_id)
        self.message_user(request, f"Marked {len(ids)} sessions deleted.", messages.SUCCESS)

    def _set_legal_hold(self, request: HttpRequest, queryset: QuerySet, *, held: bool) -> None:
        ids = list(queryset.exclude(legal_hold=held).values_list("id", flat=True))
        changed = retention.session_legal_hold_set(session_ids=ids, held=held, by=request.user)  # type: ignore[arg-type]
        message = "Placed under legal hold" if held else "Released from legal hold"
        for session in DeliberationSession.objects.filter(pk__in=ids).only("id"):
            self.log_change(request, session, message)  # the admin's history: who and when
        self.message_user(request, f"{message}: {changed} sessions.", messages.SUCCESS)

    @admin.action(description="Place under legal hold (retention never deletes them)")
    def place_legal_hold(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_legal_hold(request, queryset, held=True)

    @admin.action(description="Release legal hold")
    def release_legal_hold(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_legal_hold(request, queryset, held=False)
