"""Content negotiation: plain JSON requests take the short path and get what DRF would answer."""

import json

import pytest
from django.http import Http404
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer, TemplateHTMLRenderer
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from bo1site.serving.jsoncodec import OrjsonRenderer
from bo1site.serving.negotiation import ContentNegotiation
from tests.factories import SessionFactory

SESSIONS = "/api/v1/sessions"
LIST_KEYS = {"sessions", "total", "limit", "offset", "has_more", "next_offset", "next_cursor"}


def get_sessions(client, accept=None):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    return client.get(SESSIONS, **headers)


def test_content_negotiation_is_the_configured_class():
    assert api_settings.DEFAULT_CONTENT_NEGOTIATION_CLASS is ContentNegotiation
    assert APIView.content_negotiation_class is ContentNegotiation


# --- through the API ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_plain_accept_headers_get_compact_json(api, user, accept):
    SessionFactory(user=user)
    response = get_sessions(api, accept)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == LIST_KEYS and body["total"] == 1
    assert response.content == JSONRenderer().render(body)  # compact, as DRF writes it
    assert b"\n" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("accept", ["text/html", "application/xml", "text/html, application/xml"])
def test_an_accept_header_json_cannot_satisfy_is_refused_with_406(api, accept):
    response = get_sessions(api, accept)
    assert response.status_code == 406, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Could not satisfy the request Accept header."}


@pytest.mark.django_db
@pytest.mark.parametrize("accept", ["text/html, */*;q=0.8", "application/*", "APPLICATION/JSON"])
def test_other_accept_headers_json_satisfies_still_get_json(api, accept):
    response = get_sessions(api, accept)
    assert response.status_code == 200, response.content
    assert set(response.json()) == LIST_KEYS


@pytest.mark.django_db
@pytest.mark.parametrize("indent", [2, 4])
def test_an_indent_in_the_accept_header_indents_the_body(api, user, indent):
    SessionFactory(user=user)
    media_type = f"application/json; indent={indent}"
    response = get_sessions(api, media_type)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"  # DRF's: the renderer's own type
    body = response.json()
    assert response.content == JSONRenderer().render(body, media_type)
    assert response.content.decode() == json.dumps(body, indent=indent, ensure_ascii=False)
    assert response.content.startswith(b"{\n" + b" " * indent + b'"sessions": [')


@pytest.mark.django_db
def test_an_unknown_format_override_is_a_404(api):
    assert api.get(f"{SESSIONS}?format=json").status_code == 200
    assert api.get(f"{SESSIONS}?format=xml", HTTP_ACCEPT="*/*").status_code == 404


# --- the same choice as DRF's negotiation -------------------------------------------------------

ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "",
    " application/json",
    "APPLICATION/JSON",
    "application/json; indent=4",
    "application/json;q=0.5",
    "application/*",
    "*/*; indent=2",
    "text/html",
    "text/html, */*;q=0.8",
    "text/html;q=0.9, application/json",
    "application/json, text/html",
    "text/event-stream",
]
RENDERER_SETS = [
    [OrjsonRenderer],
    [OrjsonRenderer, BrowsableAPIRenderer],
    [BrowsableAPIRenderer, OrjsonRenderer],
    [TemplateHTMLRenderer],
    [JSONRenderer, TemplateHTMLRenderer],
]
# A `?format=` override, or a format suffix from the URL.
FORMATS = [
    ("", None),
    ("?format=json", None),
    ("?format=api", None),
    ("?format=xml", None),
    ("", "json"),
    ("", "api"),
]


def make_request(accept, query=""):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    return Request(APIRequestFactory().get(f"{SESSIONS}{query}", **headers))


def choice(negotiation, request, renderers, format_suffix=None):
    """Which renderer (by position) and media type a negotiation picks, or what it raises."""
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, format_suffix)
    except (NotAcceptable, Http404) as exc:
        return type(exc)
    return renderers.index(renderer), media_type


@pytest.mark.parametrize("renderer_classes", RENDERER_SETS)
@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize(("query", "format_suffix"), FORMATS)
def test_negotiation_picks_what_drf_picks(renderer_classes, accept, query, format_suffix):
    renderers = [cls() for cls in renderer_classes]
    request = make_request(accept, query)
    ours = choice(ContentNegotiation(), request, renderers, format_suffix)
    assert ours == choice(DefaultContentNegotiation(), request, renderers, format_suffix)


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_plain_accept_headers_skip_parsing_the_header(monkeypatch, accept):
    def parse(*args, **kwargs):
        raise AssertionError("the Accept header was parsed")

    monkeypatch.setattr(DefaultContentNegotiation, "_get_parsed_accept_list", parse)
    renderers = [OrjsonRenderer(), BrowsableAPIRenderer()]
    assert choice(ContentNegotiation(), make_request(accept), renderers) == (0, "application/json")
