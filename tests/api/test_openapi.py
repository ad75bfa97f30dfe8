"""OpenAPI: /api/schema/ is valid OpenAPI 3 and documents every /api/v1 endpoint accurately."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.validation import validate_schema
from rest_framework.views import APIView

pytestmark = pytest.mark.django_db

API_PREFIX = "/api/v1/"


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from rest_framework.test import APIClient

    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content[:2000]
    return response.json()


def api_routes(patterns=None, prefix=""):
    """(OpenAPI path, view class) of every DRF view the URLconf mounts under /api/v1/."""
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from api_routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            view_class = getattr(entry.callback, "view_class", None)
            path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
            if path.startswith(API_PREFIX) and view_class and issubclass(view_class, APIView):
                yield path, view_class


def view_methods(view_class):
    return {m for m in view_class.http_method_names if m != "options" and hasattr(view_class, m)}


def test_the_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)  # raises on any violation of the OpenAPI 3 JSON Schema


def test_every_api_v1_endpoint_is_documented_with_its_methods(schema):
    routes = list(api_routes())
    assert {path for path, _ in routes} >= {"/api/v1/sessions", "/api/v1/sessions/{session_id}"}
    for path, view_class in routes:
        assert path in schema["paths"], path
        documented = set(schema["paths"][path]) - {"parameters"}
        assert documented == view_methods(view_class) - {"head"}, path


def test_every_operation_documents_401_and_503_and_404_where_a_session_is_named(schema):
    for path, operations in schema["paths"].items():
        if not path.startswith(API_PREFIX):
            continue
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"401", "503"} <= codes, (method, path)
            if "{session_id}" in path:
                assert "404" in codes, (method, path)
            if operation.get("requestBody") or any(
                p["in"] == "query" for p in operation.get("parameters", [])
            ):
                assert "400" in codes, (method, path)


def component(schema, ref):
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def test_create_documents_its_body_its_rules_and_its_answers(schema):
    operation = schema["paths"]["/api/v1/sessions"]["post"]
    body = component(
        schema, operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert body["required"] == ["problem_statement"]
    statement = body["properties"]["problem_statement"]
    assert (statement["minLength"], statement["maxLength"]) == (10, 10_000)
    assert body["properties"]["problem_context"]["type"] == "object"
    rounds = body["properties"]["max_rounds"]
    assert (rounds["minimum"], rounds["maximum"]) == (1, 10)
    assert {"200", "201", "400", "401", "503"} <= set(operation["responses"])
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header"
               for p in operation["parameters"])  # fmt: skip
    created = component(
        schema, operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert {"id", "status", "phase", "synthesis", "final_recommendation"} <= set(
        created["properties"]
    )


def test_list_documents_its_parameters_and_its_page_shape(schema):
    operation = schema["paths"]["/api/v1/sessions"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert {"status", "q", "cursor", "created_after", "created_before", "limit", "offset"} <= set(
        params
    )
    assert params["created_after"]["schema"]["format"] == "date-time"
    assert "deleted" not in params["status"]["schema"]["enum"]
    assert (params["limit"]["schema"]["minimum"], params["limit"]["schema"]["maximum"]) == (1, 100)
    page = component(
        schema, operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert set(page["properties"]) == {
        "sessions", "total", "limit", "offset", "has_more", "next_offset", "next_cursor",
    }  # fmt: skip
    summary = component(schema, page["properties"]["sessions"]["items"]["$ref"])
    assert "snippet" in summary["properties"]


def test_delete_documents_204_without_a_body(schema):
    operation = schema["paths"]["/api/v1/sessions/{session_id}"]["delete"]
    assert "content" not in operation["responses"]["204"]


def test_error_answers_have_documented_shapes(schema):
    operation = schema["paths"]["/api/v1/sessions/{session_id}"]["get"]
    for code, fields in (("404", {"detail"}), ("503", {"detail", "reason"})):
        error = component(
            schema, operation["responses"][code]["content"]["application/json"]["schema"]["$ref"]
        )
        assert set(error["properties"]) >= fields


def test_token_and_cookie_authentication_are_documented(schema):
    schemes = schema["components"]["securitySchemes"]
    assert (
        schemes["tokenAuth"]["in"] == "header" and schemes["tokenAuth"]["name"] == "Authorization"
    )
    assert schemes["cookieAuth"]["in"] == "cookie"


def test_swagger_ui_is_served_at_api_docs(anon):
    response = anon.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html and "/api/schema/" in html


def test_the_schema_generates_without_warnings(tmp_path):
    out = tmp_path / "schema.yml"
    # --fail-on-warn turns any warning or error of the generator into a non-zero exit.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out),
                 stdout=StringIO(), stderr=StringIO())  # fmt: skip
    assert out.read_text().startswith("openapi: 3")


@pytest.mark.django_db
def test_a_400_declares_its_field_map_and_real_400s_conform(schema, api):
    import jsonschema

    operation = schema["paths"]["/api/v1/sessions"]["post"]
    error = component(
        schema, operation["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    )
    # A generated client types the map of field messages, not "unknown".
    assert error["additionalProperties"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": error["additionalProperties"]["description"],
    }
    answers = [
        api.post(
            "/api/v1/sessions", {"problem_statement": "short", "max_rounds": 99}, format="json"
        ),
        api.get("/api/v1/sessions", {"limit": "0", "status": "nope"}),
    ]
    for response in answers:
        assert response.status_code == 400
        body = response.json()
        assert {"problem_statement", "max_rounds"} <= set(body) or {"limit", "status"} <= set(body)
        jsonschema.validate(body, error)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"problem_statement": 5}, error)
