"""The webhooks API: a user's endpoints and what was delivered to them."""

from __future__ import annotations

from django.db import transaction
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sessions_app.api.views import ERRORS

from .. import selectors, services
from ..models import Endpoint
from . import serializers as limits
from .serializers import (
    DeliveryListSerializer,
    DeliveryQuerySerializer,
    DeliverySerializer,
    EndpointListSerializer,
    EndpointSerializer,
    EndpointUpdateSerializer,
    EndpointWithSecretSerializer,
    EndpointWriteSerializer,
)

NOT_FOUND = OpenApiResponse(ERRORS[404].response, "No such webhook endpoint for this user.")


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: NOT_FOUND if code == 404 else ERRORS[code] for code in codes}


def owned_endpoint_or_404(request: Request, endpoint_id: str) -> Endpoint:
    """The endpoint when it is the caller's; 404 otherwise (also for an id that is no number)."""
    if not (endpoint_id.isascii() and endpoint_id.isdigit()) or len(endpoint_id) > 18:
        raise Http404("No such webhook endpoint.")
    endpoint = selectors.endpoint_get_for_user(user=request.user, endpoint_id=int(endpoint_id))
    if endpoint is None:
        raise Http404("No such webhook endpoint.")
    return endpoint


class EndpointCollectionView(APIView):
    """Register an endpoint, or list the caller's endpoints."""

    @extend_schema(
        operation_id="webhooks_list", responses={200: EndpointListSerializer, **errors(401, 503)}
    )
    def get(self, request: Request) -> Response:
        endpoints = list(selectors.endpoint_list_for_user(user=request.user))
        return Response(
            {"webhooks": EndpointSerializer(endpoints, many=True).data, "count": len(endpoints)}
        )

    @extend_schema(
        operation_id="webhooks_create",
        request=EndpointWriteSerializer,
        responses={201: EndpointWithSecretSerializer, **errors(400, 401, 503)},
    )
    def post(self, request: Request) -> Response:
        body = EndpointWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            most = limits.MAX_ENDPOINTS_PER_USER
            if selectors.endpoint_list_for_user(user=request.user).count() >= most:
                return Response(
                    {"url": [f"At most {most} endpoints per user."]},
                    status=status.HTTP_400_BAD_REQUEST,
                )
            endpoint = services.endpoint_create(user=request.user, **body.validated_data)
        return Response(EndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class EndpointDetailView(APIView):
    """One endpoint: read, change (re-enable) or remove it."""

    @extend_schema(
        operation_id="webhooks_retrieve",
        responses={200: EndpointSerializer, **errors(401, 404, 503)},
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        return Response(EndpointSerializer(owned_endpoint_or_404(request, endpoint_id)).data)

    @extend_schema(
        operation_id="webhooks_update",
        request=EndpointUpdateSerializer,
        responses={200: EndpointSerializer, **errors(400, 401, 404, 503)},
    )
    def patch(self, request: Request, endpoint_id: str) -> Response:
        endpoint = owned_endpoint_or_404(request, endpoint_id)
        body = EndpointUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=endpoint, **body.validated_data)
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(operation_id="webhooks_destroy", responses={204: None, **errors(401, 404, 503)})
    def delete(self, request: Request, endpoint_id: str) -> Response:
        services.endpoint_delete(endpoint=owned_endpoint_or_404(request, endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotateSecretView(APIView):
    """A new signing secret (shown once); the old one keeps signing for 24 hours."""

    @extend_schema(
        operation_id="webhooks_rotate_secret",
        request=None,
        responses={200: EndpointWithSecretSerializer, **errors(401, 404, 503)},
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint = services.endpoint_rotate_secret(
            endpoint=owned_endpoint_or_404(request, endpoint_id)
        )
        return Response(EndpointWithSecretSerializer(endpoint).data)


class EndpointDeliveriesView(APIView):
    """An endpoint's deliveries, newest first."""

    @extend_schema(
        operation_id="webhooks_deliveries",
        parameters=[DeliveryQuerySerializer],
        responses={200: DeliveryListSerializer, **errors(400, 401, 404, 503)},
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        endpoint = owned_endpoint_or_404(request, endpoint_id)
        query = DeliveryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        deliveries = selectors.delivery_list_for_endpoint(
            endpoint=endpoint, limit=query.validated_data.get("limit", 50)
        )
        return Response(
            {"deliveries": DeliverySerializer(deliveries, many=True).data, "count": len(deliveries)}
        )
