"""Apache Cassandra (and ScyllaDB): a table or CQL query read with the driver's paging (``fetch_size``).

The server hands over ``batch_size`` rows a page; the next page is fetched only when the previous one is
converted, so memory stays bounded. Arrow types come from the values of the first page (as for other drivers
that describe types coarsely: docs/sources.md); a later value that does not fit sends its row to the
quarantine. ``cursor_column`` makes reads incremental (``WHERE col >= ? ALLOW FILTERING`` on a table — fine for
a clustering column, a full scan otherwise; prefer a ``query`` that names the partitions).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field

from etl_platform.connectors.cassandra.connection import CassandraConnection, cassandra_session, quote
from etl_platform.errors import ClientConnectionError, ConfigurationError, QueryError
from etl_platform.extras import require
from etl_platform.sources.base import Extraction, LandingPlan, Source, SourceBatch, decode_value, first_line
from etl_platform.sources.relational import CursorTracker, rows_to_batch, with_positions


class CassandraSource(Source, CassandraConnection):
    """A table or a CQL query, paged (connection fields: ``CassandraConnection``)."""

    object_setting: ClassVar[str | None] = "table"
    cursor_setting: ClassVar[str | None] = "cursor_column"

    kind = "cassandra"

    query: str | None = Field(default=None, description="A CQL SELECT instead of a table; `?` parameters.")
    params: list[Any] | None = None
    cursor_column: str | None = None
    primary_key: list[str] = Field(default_factory=list)

    def for_query(self, query: Any = None, params: Any = None) -> Source:
        """CQL with ``?`` parameters (``execute_query("SELECT ... WHERE id = ?", [1])``)."""
        update: dict = {"params": list(params) if params else None}
        if query:
            update.update(query=query, table=None)
        return self.model_copy(update=update)

    def describe(self) -> str:
        return CassandraConnection.describe(self)

    def landing_plan(self) -> LandingPlan:
        if self.primary_key:
            return LandingPlan("merge" if self.cursor_column else "replace", tuple(self.primary_key))
        return LandingPlan("append" if self.cursor_column else "replace")

    def statement(self, state: dict) -> tuple[str, list]:
        if bool(self.table) == bool(self.query):
            raise ConfigurationError("cassandra: set exactly one of `table` or `query`")
        sql = self.query or f"SELECT * FROM {quote(self.keyspace)}.{quote(self.table)}"
        params = list(self.params or [])
        if self.cursor_column and "cursor" in state:
            if self.query:
                raise ConfigurationError("cassandra: cursor_column works with `table`; put the condition in the query")
            sql += f" WHERE {quote(self.cursor_column)} >= ? ALLOW FILTERING"
            params.append(decode_value(state["cursor"]))
        return sql, params

    def extract(self, state: dict | None = None) -> Extraction:
        return CassandraExtraction(self, state)


class CassandraExtraction(Extraction):
    def __init__(self, source: CassandraSource, state: dict | None):
        super().__init__(state)
        self.source = source
        self.session = None

    def _batches(self) -> Iterator[SourceBatch]:
        require("cassandra", "CassandraSource")
        from cassandra import ConsistencyLevel, DriverException
        require("cassandra", "CassandraSource")
        from cassandra.query import SimpleStatement, tuple_factory

        source = self.source
        sql, params = source.statement(self.state)
        level = ConsistencyLevel.name_to_value.get(source.consistency.upper())
        if level is None:
            raise ConfigurationError(f"cassandra: consistency {source.consistency!r} is not one of "
                                     f"{', '.join(sorted(ConsistencyLevel.name_to_value))}")
        try:
            self.session = cassandra_session(source)
        except Exception as error:
            raise ClientConnectionError(str(error)) from error
        self.session.row_factory = tuple_factory
        tracker = CursorTracker(source.cursor_column, self.state)
        read, types = 0, None
        try:
            result = self.session.execute(SimpleStatement(sql, fetch_size=source.batch_size,
                                                          consistency_level=level), params or None)
            names = list(result.column_names or [])
            types = [None] * len(names)
            while True:
                rows = list(result.current_rows)
                offset = read
                batch, rejected = rows_to_batch(rows, names, types, lambda row: f"row {offset + row + 1}")
                read += len(rows)
                tracker.see(batch)
                yield SourceBatch(with_positions(batch, offset + 1), rejected)
                if not result.has_more_pages:
                    break
                result.fetch_next_page()
        except DriverException as error:
            raise QueryError(f"cassandra: reading {source.describe()} failed after {read:,} rows: "
                             f"{first_line(error)[:300]}") from error

    def close(self) -> None:
        if self.session is not None:
            self.session.cluster.shutdown()
            self.session = None
