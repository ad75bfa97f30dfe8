"""Full-text search over sessions: the weighted English document PostgreSQL keeps per row."""

from typing import Any

from django.contrib.postgres.search import SearchVectorField
from django.db.models import F, Func

# The text search configuration: English stemming, so "hiring" finds "hire".
SEARCH_CONFIG = "english"

# Which text counts how much in the ranking: the problem itself first, its context last.
# (column, weight, its empty value)
DOCUMENT_WEIGHTS = (
    ("problem_statement", "A", "''"),
    ("final_recommendation", "B", "''"),
    ("synthesis_text", "C", "''"),
    ("problem_context", "D", "'{}'::jsonb"),  # to_tsvector(jsonb) reads its string values only
)


class SessionSearchDocument(Func):
    """setweight(to_tsvector('english', column), weight) || ... over DOCUMENT_WEIGHTS.

    Every function in it is IMMUTABLE, so PostgreSQL can keep it as a generated column.
    """

    output_field = SearchVectorField()

    def __init__(self) -> None:
        super().__init__(*(F(column) for column, _, _ in DOCUMENT_WEIGHTS))

    def as_sql(  # type: ignore[override]
        self, compiler: Any, connection: Any, **extra_context: Any
    ) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        for expression, (_, weight, empty) in zip(
            self.get_source_expressions(), DOCUMENT_WEIGHTS, strict=True
        ):
            sql, expression_params = compiler.compile(expression)
            parts.append(
                f"setweight(to_tsvector('{SEARCH_CONFIG}'::regconfig, COALESCE({sql}, {empty})), "
                f"'{weight}')"
            )
            params.extend(expression_params)
        return "(" + " || ".join(parts) + ")", params
