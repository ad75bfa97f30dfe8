"""ORM querysets compiled once and run with new values: the store's fast path, in one place.

Stock Django builds and compiles a queryset's SQL every time it runs; here the hot queries are
compiled once and run with new values, and those with one plan for every value are prepared on
the server. Measured: the list's page and count through the ORM cost 1.4 + 0.85 ms of CPU per
request, compiled once 0.24 + 0.23 ms; preparing cut the token lookup's and the count's server
CPU by about half (docs/PERFORMANCE-HISTORY.md, "Prepared list SQL", "Prepared statements").

The queries every request (or engine step) runs are written as ordinary querysets where they
belong (the token lookup in bo1site/serving/authentication.py, the list's page and count in
sessions_app/selectors.py, the step's locked read in sessions_app/services.py), with `Param`
standing for the values that change between runs. `PreparedQuery` builds such a queryset once,
keeps the SQL and the row-building plan Django compiled for it, and on each run binds the new
values and builds the rows as the ORM would (model instances with `from_db`, or value tuples,
with the fields' converters). Building and compiling a queryset on every request cost several
times the CPU PostgreSQL spends answering it (the list's page and count through the ORM: 1.4 +
0.85 ms of CPU per request, against 0.24 + 0.23 ms compiled once).

A query whose plan does not depend on its values (a lookup by a unique key) is also prepared on
the server once per connection (`PREPARE name AS ...`, sent on the raw connection so it is not
counted as one of the request's queries, then `EXECUTE name(...)`): PostgreSQL parsed and
planned it on every request, about half of those queries' server CPU. A query whose best plan
depends on its values (the list's page: a user's handful of rows, or a deep page of a large
history) is never prepared: after five runs PostgreSQL may switch a prepared statement to one
generic plan, and the generic plan of the page walks the global created-at index and filters by
user, so a user with one session waited 200 ms on that connection from then on. Sent as plain SQL
it is planned for its values every time, which costs about the same server CPU.

The names prepared on a connection live on the connection object itself
(bo1site.serving.db.base.PreparingConnection), so a new connection prepares again. Prepared
statements belong to a server session: behind a pooler that hands each transaction to another server
connection (PgBouncer in transaction mode), set DATABASE_PREPARED_STATEMENTS=0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import BooleanField, Expression, Func, Model, QuerySet, signals
from django.db.models.query import (
    FlatValuesListIterable,
    ModelIterable,
    ValuesListIterable,
    get_related_populators,
)
from django.db.models.sql.subqueries import InsertQuery


def _numbered(sql: str) -> str:
    """`%s` placeholders as PostgreSQL's `$1`, `$2`... (the SQL holds no literal `%`)."""
    parts = sql.split("%s")
    return "".join(
        part + (f"${n}" if n < len(parts) else "") for n, part in enumerate(parts, start=1)
    )


def execute_prepared(cursor: Any, name: str, sql: str, params: Sequence[Any]) -> None:
    """Run `sql` (with `%s` placeholders) on a Django cursor as the prepared statement `name`."""
    raw = cursor.cursor.connection
    prepared: set[str] | None = getattr(raw, "prepared", None)
    if prepared is None or not settings.DATABASE_PREPARED_STATEMENTS:
        cursor.execute(sql, params)
        return
    if name not in prepared:
        # Errors as Django raises them (django.db.OperationalError...), as for the EXECUTE.
        with cursor.db.wrap_database_errors, raw.cursor() as setup:
            setup.execute(f"PREPARE {name} AS {_numbered(sql)}")
        prepared.add(name)
    placeholders = ", ".join(["%s"] * len(params))
    cursor.execute(f"EXECUTE {name}({placeholders})", params)


class Param(Expression):
    """A value given when a PreparedQuery runs, e.g. `filter(user_id=Param("user_id"))`."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        return "%s", (self,)


class AnyOf(Func):
    """`AnyOf(F("id"), Param("ids"))`: the column is one of a list bound to one placeholder
    (`id = ANY(%s)`), so lists of any length run the same compiled query. Filter on it as is."""

    arg_joiner = " = ANY("
    template = "(%(expressions)s))"
    output_field = BooleanField()


class RowBefore(Func):
    """`RowBefore(F("created_at"), F("id"), Param("created_at"), Param("id"))`: the row of the
    first half sorts before the second, as PostgreSQL compares rows, column by column
    (`(created_at, id) < (%s, %s)`). An index on those columns serves it as one range; the same
    condition spelt with OR and = is planned twice as slowly and filtered row by row (a cursor
    page's planning 0.075 -> 0.047 ms, against 0.040 for the first page). Filter on it as is."""

    output_field = BooleanField()

    def as_sql(  # type: ignore[override]
        self, compiler: Any, connection: Any, **extra_context: Any
    ) -> tuple[str, tuple[Any, ...]]:
        half = len(self.source_expressions) // 2
        parts, params = [], []
        for expression in self.source_expressions:
            sql, expression_params = compiler.compile(expression)
            parts.append(sql)
            params.extend(expression_params)
        left, right = ", ".join(parts[:half]), ", ".join(parts[half:])
        return f"({left}) < ({right})", tuple(params)


@dataclass(frozen=True)
class _Compiled:
    alias: str
    sql: str
    params: tuple[Any, ...]  # constants, and Params to replace with the run's values
    converters: Mapping[int, tuple[list[Callable[..., Any]], Any]]
    build_rows: Callable[[list[Any], str], list[Any]]


class PreparedQuery:
    """A queryset built and compiled once; `fetch(**values)` runs it with the given Params.

    `paginated` appends `LIMIT %s OFFSET %s`, bound from the `limit` and `offset` values (the
    ORM writes a slice's bounds into the SQL, which would make every page a new statement).
    `prepare=False` keeps the statement from being prepared on the server (see the module
    docstring); it is still compiled only once.
    """

    def __init__(
        self,
        name: str,
        build: Callable[[], QuerySet[Any, Any]],
        *,
        paginated: bool = False,
        prepare: bool = True,
    ) -> None:
        self.name = name
        self.build = build
        self.paginated = paginated
        self.prepare = prepare
        self._compiled: _Compiled | None = None

    @property
    def queryset(self) -> QuerySet[Any, Any]:
        """The query as the ORM sees it (for reading; run it with `fetch`)."""
        return self.build()

    def fetch(self, **values: Any) -> list[Any]:
        compiled = self._compiled or self._compile()
        params = [values[p.name] if isinstance(p, Param) else p for p in compiled.params]
        alias = compiled.alias
        connection = connections[alias]
        with connection.cursor() as cursor:
            if self.prepare:
                execute_prepared(cursor, self.name, compiled.sql, params)
            else:
                cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        if compiled.converters:
            rows = [self._convert(row, compiled.converters, connection) for row in rows]
        return compiled.build_rows(rows, alias)

    def first(self, **values: Any) -> Any | None:
        rows = self.fetch(**values)
        return rows[0] if rows else None

    @staticmethod
    def _convert(row: Sequence[Any], converters: Mapping[int, Any], connection: Any) -> list[Any]:
        row = list(row)
        for index, (functions, expression) in converters.items():
            value = row[index]
            for function in functions:
                value = function(value, expression, connection)
            row[index] = value
        return row

    def _compile(self) -> _Compiled:
        queryset = self.build()
        if queryset.query.is_sliced:
            raise ValueError(f"{self.name}: slice with paginated=True, not in the queryset")
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        params = tuple(params)
        if self.paginated:
            sql += " LIMIT %s OFFSET %s"
            params += (Param("limit"), Param("offset"))
        if "%%" in sql:
            raise ValueError(f"{self.name}: literal % signs in the SQL are not supported")
        fields = [column[0] for column in compiler.select[: compiler.col_count]]
        compiled = _Compiled(
            alias=queryset.db,
            sql=sql,
            params=params,
            converters=compiler.get_converters(fields),
            build_rows=_row_builder(queryset, compiler),
        )
        self._compiled = compiled
        return compiled


def _row_builder(queryset: QuerySet[Any, Any], compiler: Any) -> Callable[[list[Any], str], list]:
    """How the ORM's iterable for this queryset turns rows into results, fixed at compile time."""
    iterable = queryset._iterable_class  # type: ignore[attr-defined]
    query = queryset.query
    if query.extra_select:
        raise ValueError("extra() is not supported")
    if iterable is ValuesListIterable:
        # The compiler selects the model's fields, then the annotations; the row is the
        # values_list's own order only when it names them in that order too.
        selected = [*query.values_select, *query.annotation_select]
        if list(queryset._fields) != selected:  # type: ignore[attr-defined]
            raise ValueError("values_list: name the model's fields first, then annotations")
        return lambda rows, alias: [tuple(row) for row in rows]
    if query.annotation_select and iterable is not FlatValuesListIterable:
        raise ValueError("annotations are supported only in a values_list")
    if iterable is FlatValuesListIterable:
        return lambda rows, alias: [row[0] for row in rows]
    if iterable is not ModelIterable or queryset._known_related_objects:  # type: ignore[attr-defined]
        raise ValueError(f"{iterable.__name__} is not supported")
    klass_info, select = compiler.klass_info, compiler.select
    model: type[Model] = klass_info["model"]
    start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
    init_list = [column[0].target.attname for column in select[start:end]]
    related = get_related_populators(klass_info, select, queryset.db)  # type: ignore[call-arg]

    def build(rows: list[Any], alias: str) -> list[Any]:
        objects = []
        for row in rows:
            obj = model.from_db(alias, init_list, row[start:end])
            for populator in related:
                populator.populate(row, obj)
            objects.append(obj)
        return objects

    return build


class PreparedInsert:
    """`obj.save(force_insert=True)` for a model whose primary key the application makes, with
    the INSERT the ORM compiles built once and prepared on the server once per connection.

    Each field's value goes through the field exactly as in save() (`pre_save`, then
    `get_db_prep_save`), and the model's pre_save and post_save signals are sent as save() sends
    them.
    """

    def __init__(self, name: str, model: type[Model]) -> None:
        self.name = name
        self.model = model
        # A generated column (the search document) is PostgreSQL's to write, and an automatic
        # primary key the database's sequence's, never the INSERT's (as in save()).
        auto = model._meta.auto_field
        self.fields = [
            f for f in model._meta.local_concrete_fields if not f.generated and f is not auto
        ]
        self._sql: str | None = None

    def insert(self, obj: Model, *, using: str = "default") -> None:
        connection = connections[using]
        signals.pre_save.send(
            sender=self.model, instance=obj, raw=False, using=using, update_fields=None
        )
        with connection.cursor() as cursor:
            execute_prepared(
                cursor, self.name, self._sql or self._compile(using), self._values(obj, using)
            )
        obj._state.adding = False
        obj._state.db = using
        signals.post_save.send(
            sender=self.model,
            instance=obj,
            created=True,
            update_fields=None,
            raw=False,
            using=using,
        )

    def statement(self, obj: Model, cursor: Any, *, using: str = "default") -> bytes:
        """The INSERT of `obj` as one SQL statement with its values bound (by psycopg2's
        `mogrify` on `cursor`), for sending many rows in one round trip. No signals are sent:
        this is for bulk writes, like bulk_create."""
        return bytes(cursor.mogrify(self._sql or self._compile(using), self._values(obj, using)))

    def _values(self, obj: Model, using: str) -> list[Any]:
        connection = connections[using]
        return [
            field.get_db_prep_save(field.pre_save(obj, True), connection=connection)
            for field in self.fields
        ]

    def _compile(self, using: str) -> str:
        template = self.model()
        for field in self.fields:
            setattr(template, field.attname, Param(field.attname))
        query = InsertQuery(self.model)
        # raw: the fields' own pre_save (auto_now) runs per row in _values, not on the template
        query.insert_values(self.fields, [template], raw=True)
        [(sql, params)] = query.get_compiler(using=using).as_sql()
        if len(params) != len(self.fields) or not all(isinstance(p, Param) for p in params):
            raise ValueError(f"{self.name}: the compiled INSERT does not bind every field")
        self._sql = sql
        return sql
