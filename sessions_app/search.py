"""Full-text search over sessions: the weighted English document PostgreSQL keeps per row, the
query, its ranking and the highlighted snippet.

How a search finds one user's rows fast: a GIN index over (user_id, document) keeps the user's
entries apart from each word's, and each search had to intersect its words' entries across
every user (a common word such as "business" has one in almost every row), which cost more the
bigger the whole table grew, not the user's history. The index `sessions_search_keys` instead
holds each row's words prefixed with its owner (`42:busi`, and `42:` alone), so a word's entries
are the owner's rows only. A search asks that index with the owner's prefix on every word of the
query (`session_search_scope`: a superset of the matches, phrases read as "both words", negated
words left out), and the real query against the row's own document (`search_vector @@ query`)
then decides phrases, negations and weights exactly. Both SQL functions are created by
migration 0006.
"""

import html
from typing import Any

from django.contrib.postgres.search import (
    SearchHeadline,
    SearchQuery,
    SearchRank,
    SearchVectorField,
)
from django.db import connection
from django.db.models import BooleanField, F, FloatField, Func, TextField, Value
from django.db.models.functions import Cast, Coalesce, Concat

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


# ts_headline marks matches with these; the snippet is escaped for HTML and they become <mark>.
_MARK_START, _MARK_STOP = "\u27e6", "\u27e7"


class SessionSearchKeys(Func):
    """The owner-prefixed words of a row's document, as the index `sessions_search_keys` has
    them: session_search_keys(user_id, search_vector)."""

    function = "session_search_keys"
    output_field = SearchVectorField()

    def __init__(self) -> None:
        super().__init__(F("user_id"), F("search_vector"))


class _OwnerScope(Func):
    """session_search_scope(owner, query): the query's words with the owner's prefix."""

    function = "session_search_scope"
    output_field = SearchVectorField()  # a tsquery; only ever compared with @@


class _Matches(Func):
    """`document @@ query` as a condition a queryset can filter on."""

    template = "%(expressions)s"
    arg_joiner = " @@ "
    output_field = BooleanField()


def search_owned_by(owner: Any, query: SearchQuery) -> _Matches:
    """The rows of `owner` (a user id, or an expression of one) that may match `query`, found
    through the owner-prefixed index; the caller also filters on `search_vector=query`, which
    decides exactly."""
    if not hasattr(owner, "resolve_expression"):
        owner = Value(owner)
    return _Matches(SessionSearchKeys(), _OwnerScope(owner, query))


def search_query(text: Any) -> SearchQuery:
    """websearch_to_tsquery syntax: words, "an exact phrase", `or`, and -word to exclude."""
    return SearchQuery(text, config=SEARCH_CONFIG, search_type="websearch")


def search_is_empty(text: str) -> bool:
    """True when the text parses to no search term at all (only stop words or punctuation)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT numnode(websearch_to_tsquery(%s::regconfig, %s))", [SEARCH_CONFIG, text]
        )
        return int(cursor.fetchone()[0]) == 0


def search_rank(query: SearchQuery) -> Cast:
    """ts_rank as double precision: a real read back as text and sent again in a cursor would
    not compare equal to itself, and a page could repeat."""
    return Cast(SearchRank(F("search_vector"), query), FloatField())


class _ContextText(Func):
    """The string values of a session's context as one text (migration 0007)."""

    function = "session_context_text"
    output_field = TextField()


def search_headline(query: SearchQuery) -> SearchHeadline:
    """A short excerpt of the problem, recommendation, synthesis and context around the
    matches (all that the search document holds, so every result has a match to show)."""
    text = Concat(
        "problem_statement",
        Value("\n"),
        "final_recommendation",
        Value("\n"),
        "synthesis_text",
        Value("\n"),
        Coalesce(_ContextText("problem_context"), Value(""), output_field=TextField()),
        output_field=TextField(),
    )
    return SearchHeadline(
        text,
        query,
        config=SEARCH_CONFIG,
        start_sel=_MARK_START,
        stop_sel=_MARK_STOP,
        fragment_delimiter=" … ",
        max_words=30,
        min_words=12,
        max_fragments=2,
    )


def snippet_html(headline: str | None) -> str | None:
    """The headline as safe HTML: the text escaped, each match in <mark>."""
    if headline is None:
        return None
    escaped = html.escape(" ".join(headline.split()), quote=False)
    return escaped.replace(_MARK_START, "<mark>").replace(_MARK_STOP, "</mark>")
