"""The caller's own account: take all of its data (a ZIP), or delete it with everything in it."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connection
from django.http import StreamingHttpResponse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import accounts
from .views import error_responses


class AccountDeleteSerializer(serializers.Serializer):
    confirm = serializers.CharField(
        help_text="Your username, exactly: the proof that you mean it.", trim_whitespace=False
    )


class AccountDeletedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    sessions = serializers.IntegerField(help_text="How many sessions are being deleted.")


_DONE = object()


class ThreadBoundStream(StreamingHttpResponse):
    """A response whose body a synchronous generator makes, streamed as it is made everywhere.

    Under ASGI Django would read a synchronous iterator to its end before sending a byte; here
    each chunk is made in one thread of the response's own (the generator's database connection
    lives and is closed there) while the event loop sends the one before. Under WSGI and the
    test client it is an ordinary streaming response.
    """

    def __init__(self, chunks: Iterator[bytes], **kwargs: Any) -> None:
        super().__init__(chunks, **kwargs)
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bo1-export")

        def step() -> Any:
            return next(self._chunks, _DONE)

        def finish() -> None:
            with contextlib.suppress(Exception):
                self._chunks.close()  # type: ignore[attr-defined]
            connection.close()

        try:
            while (chunk := await loop.run_in_executor(executor, step)) is not _DONE:
                yield chunk
        finally:
            await loop.run_in_executor(executor, finish)
            executor.shutdown(wait=False)


class AccountExportView(APIView):
    """Everything the caller has, as one ZIP made while it downloads."""

    @extend_schema(
        operation_id="me_export",
        summary="Download all your sessions as a ZIP",
        description=(
            "A ZIP with `index.json` (every session: id, file, problem, status, dates) and "
            "`sessions/<id>.json` per session: `{session: <detail>, events: [...]}`, the full "
            "transcript. It is streamed as it is made, in constant memory whatever the count."
        ),
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, "The ZIP archive."),
            **error_responses(401, 503),
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        response = ThreadBoundStream(
            accounts.account_export_chunks(user=request.user), content_type="application/zip"
        )
        filename = accounts.export_filename(request.user)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class BodyOnDeleteSchema(AutoSchema):
    """drf-spectacular documents a request body for POST, PUT and PATCH only; DELETE /me has one."""

    def _get_request_body(self, direction: str = "request") -> Any:
        if self.method != "DELETE":
            return super()._get_request_body(direction)
        self.method = "POST"
        try:
            return super()._get_request_body(direction)
        finally:
            self.method = "DELETE"


class AccountView(APIView):
    """The caller's account: DELETE removes it and all its data."""

    schema = BodyOnDeleteSchema()

    @extend_schema(
        operation_id="me_destroy",
        summary="Delete your account and all its data",
        description=(
            'Send `{"confirm": "<your username>"}`. The account stops working at once (its '
            "tokens answer 401 from then on); its sessions, events and Redis keys are deleted "
            "in the background. Sessions an operator put under legal hold are kept, and with "
            "them the closed account they belong to."
        ),
        request=AccountDeleteSerializer,
        responses={202: AccountDeletedSerializer, **error_responses(400, 401, 503)},
    )
    def delete(self, request: Request) -> Response:
        body = AccountDeleteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        username = request.user.get_username()
        if body.validated_data["confirm"] != username:
            return Response(
                {"confirm": ["Must be your username, exactly; nothing was deleted."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        left = accounts.account_delete(user=request.user)
        return Response(
            {"detail": f"Account {username} is being deleted.", "sessions": left},
            status=status.HTTP_202_ACCEPTED,
        )
