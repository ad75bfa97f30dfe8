"""Control endpoints: start, pause, resume, kill and clarify a deliberation."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sessions_app.api.serializers import SessionDetailSerializer, StrictCharField
from sessions_app.api.throttles import SessionStartThrottle
from sessions_app.api.views import error_responses, owned_session_or_404, public_detail
from sessions_app.services import IllegalTransition
from sessions_app.snapshots import session_snapshot

from .. import services


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    status = serializers.CharField(help_text="The session's current status.")


# Patterns that put in the schema what the fields enforce (DRF refuses NUL in any text, and
# trims before checking lengths), so that a client and a fuzzer read the same rules.
# Non-empty on purpose: a blank value is its own case in the schema (allow_blank).
NO_NUL = RegexValidator(r"^[^\x00]+$", "Must not contain NUL characters.")
NOT_BLANK = RegexValidator(
    r"^[^\x00]*[^\s\x00][^\x00]*$", "Must contain a character besides spaces, and no NUL."
)
# 0.01 to 1000 with at most two decimals, written plainly: "5", "12.50", "0.25", "1000.00".
BUDGET = RegexValidator(
    r"^(?:1000(?:\.0{1,2})?|[1-9][0-9]{0,2}(?:\.[0-9]{1,2})?|0\.(?:0[1-9]|[1-9][0-9]?))$",
    'Must be an amount in USD from 0.01 to 1000 with at most two decimals, e.g. "5.00".',
)


class KillSerializer(serializers.Serializer):
    reason = StrictCharField(
        required=False, allow_blank=True, max_length=500, default="", validators=[NO_NUL]
    )


class ClarifySerializer(serializers.Serializer):
    answer = StrictCharField(
        min_length=1, max_length=5000, trim_whitespace=True, validators=[NOT_BLANK]
    )


class ResumeSerializer(serializers.Serializer):
    # A string as the schema says (JSON numbers would lose cents to floating point).
    extra_budget = StrictCharField(
        required=False,
        trim_whitespace=False,
        validators=[BUDGET],
        help_text='USD to add to the session\'s budget, e.g. "5.00" (after a budget pause, one '
        "default allowance is added when this is omitted).",
    )

    def validate_extra_budget(self, value: str) -> Decimal:
        return Decimal(value)


def control_schema(
    operation_id: str,
    request: type[serializers.Serializer] | None = None,
    *,
    throttled: bool = False,
) -> Any:
    codes = (*((400,) if request else ()), 401, 404, *((429,) if throttled else ()), 503)
    return extend_schema(
        operation_id=operation_id,
        request=request,
        responses={
            202: SessionDetailSerializer,
            409: OpenApiResponse(ConflictSerializer, "Illegal transition for the current status."),
            **error_responses(*codes),
        },
    )


class ControlView(APIView):
    """Shared shape: find the caller's session, validate the body, run one control service."""

    body: type[serializers.Serializer] | None = None
    service: Callable[..., Any]

    def post(self, request: Request, session_id: str) -> Response:
        session = owned_session_or_404(request, session_id)
        kwargs: dict[str, Any] = {}
        if self.body is not None:
            body = self.body(data=request.data)
            body.is_valid(raise_exception=True)
            kwargs = {k: v for k, v in body.validated_data.items() if v is not None}
        try:
            session = type(self).service(session_id=session.id, **kwargs)
        except IllegalTransition as exc:
            return Response(
                {"detail": str(exc), "status": exc.current}, status=status.HTTP_409_CONFLICT
            )
        except services.BrokerUnavailable as exc:
            return Response(
                {
                    "detail": "The task queue is unavailable; nothing was changed.",
                    "reason": exc.reason,
                },
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": "5"},
            )
        return Response(public_detail(session_snapshot(session)), status=status.HTTP_202_ACCEPTED)


@extend_schema_view(post=control_schema("sessions_start", throttled=True))
class StartView(ControlView):
    throttle_classes = [SessionStartThrottle]
    service = staticmethod(services.deliberation_start)


@extend_schema_view(post=control_schema("sessions_pause"))
class PauseView(ControlView):
    service = staticmethod(services.deliberation_pause)


@extend_schema_view(post=control_schema("sessions_resume", ResumeSerializer))
class ResumeView(ControlView):
    body = ResumeSerializer
    service = staticmethod(services.deliberation_resume)


@extend_schema_view(post=control_schema("sessions_kill", KillSerializer))
class KillView(ControlView):
    body = KillSerializer
    service = staticmethod(services.deliberation_kill)


@extend_schema_view(post=control_schema("sessions_clarify", ClarifySerializer))
class ClarifyView(ControlView):
    body = ClarifySerializer
    service = staticmethod(services.deliberation_clarify)
