"""Schema post-processing: say in the OpenAPI document what DRF does with query strings."""

from typing import Any


def blank_query_values_mean_absent(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """Mark optional query parameters `allowEmptyValue`.

    DRF reads `?limit=` as an HTML form's empty field: as if the parameter were not given, so
    the default applies. The schema says so, or a client (or a fuzzer) would expect a 400.
    """
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and not parameter.get("required"):
                    parameter["allowEmptyValue"] = True
    return result


def validation_errors_map_fields_to_messages(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """Declare the field map of a 400: every property besides `detail` and `non_field_errors`
    is a field's name with its list of messages, so a generated client types it as such."""
    schema = result.get("components", {}).get("schemas", {}).get("ValidationError")
    if schema is not None:
        schema["additionalProperties"] = {
            "type": "array",
            "items": {"type": "string"},
            "description": "The messages for the field (body or query parameter) of that name.",
        }
    return result
