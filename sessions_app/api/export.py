"""Export of a whole session: a Markdown transcript to read, or JSON to keep or process."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors
from ..snapshots import session_snapshot
from ..transcript import Transcript, build_transcript, phase_cost_text, usd
from .serializers import EventSerializer, SessionDetailSerializer
from .views import error_responses, owned_session_or_404, public_detail

FORMATS = ("md", "json")


class ExportSerializer(serializers.Serializer):
    session = SessionDetailSerializer()
    events = EventSerializer(many=True)


class JSONErrorsOnly(BaseContentNegotiation):
    """DRF reads `?format=` as a renderer choice; here it is ours, and errors are always JSON."""

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.strip().splitlines()) or ">"


def _consensus(level: Any) -> str:
    if isinstance(level, int | float) and not isinstance(level, bool) and 0 <= level <= 1:
        return f"{round(level * 100)}%"
    return str(level)


def transcript_markdown(detail: dict[str, Any], transcript: Transcript) -> str:
    """The session as a Markdown document: problem, board, rounds, votes, synthesis, costs."""
    several = transcript.several_sub_problems
    lines = [
        "# Board of One session",
        "",
        f"- Session: `{detail['id']}`",
        f"- Status: {detail['status']} (phase {detail['phase']}, round {detail['round_number']})",
        f"- Created: {detail['created_at']}",
    ]
    if detail.get("completed_at"):
        lines.append(f"- Finished: {detail['completed_at']}")
    lines += [f"- Exported: {timezone.now().isoformat()}", "", "## Problem", ""]
    lines += [detail["problem_statement"].strip(), ""]
    context = {k: v for k, v in (detail.get("problem_context") or {}).items()}
    if context:
        lines += ["### Context", "", "```json", json.dumps(context, indent=2), "```", ""]
    if transcript.sub_problems:
        lines += ["### Sub-problems", ""]
        lines += [f"{i}. {text}" for i, text in enumerate(transcript.sub_problems, start=1)]
        lines.append("")
    if transcript.clarifications:
        lines += ["### Clarifications", ""]
        for item in transcript.clarifications:
            lines += [f"- **Q:** {item['question']}", f"  **A:** {item['answer']}"]
        lines.append("")

    lines += ["## Board", ""]
    if not transcript.board:
        lines += ["No personas were selected.", ""]
    for member in transcript.board:
        role = ", ".join(part for part in (member.archetype, member.domain) if part)
        entry = f"- **{member.persona_name}**" + (f", {role}" if role else "")
        if several and member.sub_problem_index is not None:
            entry += f" (sub-problem {member.sub_problem_index + 1})"
        lines.append(entry)
        if member.expertise:
            lines.append(f"  - Expertise: {', '.join(member.expertise)}")
        if member.rationale:
            lines.append(f"  - Why on the board: {member.rationale}")
    lines += ["", "## Transcript", ""]
    if not transcript.rounds:
        lines += ["No contributions yet.", ""]
    for group in transcript.rounds:
        title = f"Round {group.number}"
        if several and group.sub_problem_index is not None:
            title = f"Sub-problem {group.sub_problem_index + 1}, {title.lower()}"
        lines += [f"### {title}", ""]
        for contribution in group.contributions:
            lines += [f"**{contribution.persona_name}**", "", _quote(contribution.content), ""]

    lines += ["## Votes", ""]
    if not transcript.votes:
        lines += ["No votes were cast.", ""]
    for vote in transcript.votes:
        percent = vote.confidence_percent
        confidence = f" ({percent}% confident)" if percent is not None else ""
        lines.append(f"- **{vote.persona_name}**{confidence}: {vote.recommendation}")
        if vote.conditions:
            lines.append(f"  - Conditions: {'; '.join(vote.conditions)}")
    for index, level in transcript.consensus:
        where = f" (sub-problem {index + 1})" if several and index is not None else ""
        lines += ["", f"Consensus{where}: **{_consensus(level)}**"]
    lines.append("")

    if transcript.other_events:
        lines += ["## Other events", ""]
        for other in transcript.other_events:
            lines.append(f"- #{other.sequence} `{other.event_type}`: {other.text}")
        lines.append("")

    lines += ["## Synthesis", ""]
    lines += [transcript.synthesis.strip() or "No synthesis yet.", ""]
    if transcript.final_recommendation:
        lines += ["### Final recommendation", "", transcript.final_recommendation.strip(), ""]
    if transcript.stop_reason:
        lines += [f"Stopped because: {transcript.stop_reason}", ""]
    if transcript.error:
        error = transcript.error
        lines += ["## Error", "", f"`{error.get('code')}`: {error.get('message')}", ""]

    lines += ["## Costs", ""]
    lines.append(f"- Total: {usd(detail['total_cost'])} ({detail['total_tokens']} tokens)")
    for phase, cost in (detail.get("costs_by_phase") or {}).items():
        lines.append(f"- {phase}: {phase_cost_text(cost)}")
    lines.append("")
    return "\n".join(lines)


class SessionExportView(APIView):
    """The whole session as a download: `?format=md` (the default) or `?format=json`."""

    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONErrorsOnly

    @extend_schema(
        operation_id="sessions_export",
        summary="Export a session as Markdown or JSON",
        parameters=[
            OpenApiParameter(
                "format",
                str,
                OpenApiParameter.QUERY,
                enum=list(FORMATS),
                default="md",
                description="`md`: a readable transcript; `json`: the detail and every event.",
            )
        ],
        responses={
            (200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR, "A Markdown transcript."),
            (200, "application/json"): OpenApiResponse(
                ExportSerializer, "The session detail and all its events."
            ),
            **error_responses(400, 401, 404, 503),
        },
    )
    def get(self, request: Request, session_id: str) -> HttpResponse:
        fmt = request.query_params.get("format", "md").strip().lower() or "md"
        if fmt not in FORMATS:
            return Response(
                {"format": [f"Unknown format {fmt[:20]!r}: use 'md' or 'json'."]}, status=400
            )
        session = owned_session_or_404(request, session_id)
        detail = public_detail(session_snapshot(session))
        events = list(selectors.session_events_all(session_id=session.id))
        if fmt == "json":
            body = json.dumps({"session": detail, "events": events}, indent=2, ensure_ascii=False)
            response = HttpResponse(body, content_type="application/json; charset=utf-8")
        else:
            body = transcript_markdown(detail, build_transcript(detail, events))
            response = HttpResponse(body, content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{session.id}.{fmt}"'
        return response
