"""Export of a whole session: a Markdown transcript to read, or JSON to keep or process.

The Markdown is rendered by the template deliberation/transcript.md from the session's
Transcript; the URL stays under the sessions API (/api/v1/sessions/{id}/export).
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sessions_app import selectors
from sessions_app.api.negotiation import JSONErrorsOnly
from sessions_app.api.serializers import EventSerializer, SessionDetailSerializer
from sessions_app.api.views import error_responses, owned_session_or_404, public_detail
from sessions_app.snapshots import session_snapshot

from ..transcript import Transcript, build_transcript

FORMATS = ("md", "json")


class ExportSerializer(serializers.Serializer):
    session = SessionDetailSerializer()
    events = EventSerializer(many=True)


def transcript_markdown(detail: dict[str, Any], transcript: Transcript) -> str:
    """The session as a Markdown document: problem, board, rounds, votes, synthesis, costs."""
    several = transcript.several_sub_problems

    def sub_problem(index: int | None) -> int | None:
        """The 1-based sub-problem a part belongs to, named only when there are several."""
        return index + 1 if several and index is not None else None

    context = dict(detail.get("problem_context") or {})
    error = transcript.error
    body = render_to_string(
        "deliberation/transcript.md",
        {
            "detail": detail,
            "transcript": transcript,
            "exported_at": timezone.now().isoformat(),
            "context_json": json.dumps(context, indent=2) if context else "",
            "board": [
                {
                    "persona_name": member.persona_name,
                    "role": ", ".join(p for p in (member.archetype, member.domain) if p),
                    "sub_problem": sub_problem(member.sub_problem_index),
                    "expertise": member.expertise,
                    "rationale": member.rationale,
                }
                for member in transcript.board
            ],
            "rounds": [
                {
                    "title": (
                        f"Sub-problem {number}, round {group.number}"
                        if (number := sub_problem(group.sub_problem_index))
                        else f"Round {group.number}"
                    ),
                    "contributions": group.contributions,
                }
                for group in transcript.rounds
            ],
            "consensus": [
                {"sub_problem": sub_problem(index), "level": level}
                for index, level in transcript.consensus
            ],
            "error": error and {"code": error.get("code"), "message": error.get("message")},
            "costs_by_phase": list((detail.get("costs_by_phase") or {}).items()),
        },
    )
    # One final newline, whatever the template file's editor left at its end.
    return body.rstrip("\n") + "\n"


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
