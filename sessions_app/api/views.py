"""The sessions API: thin views over the store's services and selectors."""

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..models import DeliberationSession
from ..snapshots import session_snapshot
from .serializers import (
    DetailErrorSerializer,
    EventListSerializer,
    EventsQuerySerializer,
    SessionCreateSerializer,
    SessionDetailSerializer,
    SessionListQuerySerializer,
    SessionListSerializer,
    UnavailableErrorSerializer,
    ValidationErrorSerializer,
)
from .throttles import SessionCreateThrottle

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255

ERRORS: dict[int, OpenApiResponse] = {
    400: OpenApiResponse(ValidationErrorSerializer, "Invalid input: messages per field."),
    401: OpenApiResponse(DetailErrorSerializer, "No or invalid credentials."),
    404: OpenApiResponse(DetailErrorSerializer, "No such session for this user."),
    429: OpenApiResponse(DetailErrorSerializer, "Rate limit reached; see Retry-After."),
    503: OpenApiResponse(UnavailableErrorSerializer, "A store is unavailable; nothing changed."),
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """The documented error answers of an endpoint."""
    return {code: ERRORS[code] for code in codes}


def public_detail(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A hot entry as the API shows it: without the owner's id."""
    return {key: value for key, value in snapshot.items() if key != "user_id"}


def owned_session_or_404(request: Request, session_id: str) -> DeliberationSession:
    """The requested session when it belongs to the caller; 404 otherwise (never 403)."""
    session = selectors.session_get_for_user(user=request.user, session_id=session_id)
    if session is None:
        raise Http404("No such session.")
    return session


class SessionCollectionView(APIView):
    """Create a session, or list the caller's sessions newest first."""

    throttle_classes = [SessionCreateThrottle]  # counts POSTs only

    @extend_schema(
        operation_id="sessions_list",
        parameters=[SessionListQuerySerializer],
        responses={200: SessionListSerializer, **error_responses(400, 401, 503)},
    )
    def get(self, request: Request) -> Response:
        query = SessionListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            page = selectors.session_list_for_user(user=request.user, **query.validated_data)
        except selectors.InvalidListQuery as exc:
            return Response({exc.field: [exc.message]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            {
                "sessions": page.sessions,
                "total": page.total,
                "limit": page.limit,
                "offset": page.offset,
                "has_more": page.has_more,
                "next_offset": page.next_offset,
                "next_cursor": page.next_cursor,
            }
        )

    @extend_schema(
        operation_id="sessions_create",
        request=SessionCreateSerializer,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                str,
                OpenApiParameter.HEADER,
                description="Retrying with the same key returns the same session (200).",
            )
        ],
        responses={
            201: SessionDetailSerializer,
            200: OpenApiResponse(SessionDetailSerializer, "Replay of an Idempotency-Key."),
            **error_responses(400, 401, 429, 503),
        },
    )
    def post(self, request: Request) -> Response:
        body = SessionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip() or None
        if key and len(key) > MAX_IDEMPOTENCY_KEY:
            return Response(
                {IDEMPOTENCY_HEADER: [f"At most {MAX_IDEMPOTENCY_KEY} characters."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        session, created = services.session_create(
            user=request.user, idempotency_key=key, **body.validated_data
        )
        return Response(
            public_detail(session_snapshot(session)),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class SessionDetailView(APIView):
    """One session: its detail, or its soft deletion."""

    @extend_schema(
        operation_id="sessions_retrieve",
        responses={200: SessionDetailSerializer, **error_responses(401, 404, 503)},
    )
    def get(self, request: Request, session_id: str) -> Response:
        snapshot = selectors.session_detail_for_user(user=request.user, session_id=session_id)
        if snapshot is None:
            raise Http404("No such session.")
        return Response(public_detail(snapshot))

    @extend_schema(
        operation_id="sessions_destroy",
        responses={204: None, **error_responses(401, 404, 503)},
    )
    def delete(self, request: Request, session_id: str) -> Response:
        session = owned_session_or_404(request, session_id)
        services.session_soft_delete(session_id=session.id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionEventsView(APIView):
    """A page of a session's transcript: the events after sequence `after`."""

    @extend_schema(
        operation_id="sessions_events",
        parameters=[EventsQuerySerializer],
        responses={200: EventListSerializer, **error_responses(400, 401, 404, 503)},
    )
    def get(self, request: Request, session_id: str) -> Response:
        query = EventsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        session = owned_session_or_404(request, session_id)
        events = selectors.session_events_after(session_id=session.id, **query.validated_data)
        return Response({"session_id": session.id, "events": events, "count": len(events)})
