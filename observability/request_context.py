"""X-Request-ID: an incoming id is used (when it is a sane token) and echoed, else one is made."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from . import logs

HEADER = "X-Request-ID"
ACCEPTED = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def request_id_for(request: HttpRequest) -> str:
    given = request.headers.get(HEADER, "")
    return given if ACCEPTED.fullmatch(given) else uuid.uuid4().hex


class RequestContextMiddleware:
    """Binds request_id (and session_id from the URL) to the request's log lines."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        rid = request_id_for(request)
        tokens = self._bind(request, rid)
        try:
            response = self.get_response(request)
        finally:
            self._unbind(tokens)
        response[HEADER] = rid
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        rid = request_id_for(request)
        tokens = self._bind(request, rid)
        try:
            response = await self.get_response(request)
        finally:
            self._unbind(tokens)
        response[HEADER] = rid
        return response

    def process_view(
        self, request: HttpRequest, view: Any, args: Any, kwargs: dict[str, Any]
    ) -> None:
        if "session_id" in kwargs:
            logs.session_id.set(str(kwargs["session_id"]))

    @staticmethod
    def _bind(request: HttpRequest, rid: str) -> list[Any]:
        request.request_id = rid  # type: ignore[attr-defined]
        return [
            (logs.request_id, logs.request_id.set(rid)),
            (logs.current_request, logs.current_request.set(request)),
            (logs.session_id, logs.session_id.set(None)),
        ]

    @staticmethod
    def _unbind(tokens: list[Any]) -> None:
        for variable, token in reversed(tokens):
            variable.reset(token)
