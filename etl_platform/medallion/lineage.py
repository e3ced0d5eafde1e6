"""What a table's SQL says about it, read with sqlglot: the tables it reads (its asset's dependencies) and, for
each of its columns, the upstream columns it is computed from (``dagster/column_lineage``).

A step's SQL is a script (docs/incremental.md): temporary views and tables, then the statements that write its
tables. Its rows are the query of ``INSERT INTO <table> …`` (else of ``CREATE TABLE <table> AS …``); a ``SELECT *``
of a temporary relation is that relation's query. Temporary relations and the step's other tables (``owns``: its
row store, its quarantine) are followed to the warehouse tables other steps build, which are what a column's
lineage names. Columns whose origin sqlglot cannot trace (an aggregate of no column, ``count(*)``) have none.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlglot import exp

# sqlglot is imported where SQL is read, not with this module: a cached result needs none of it (~0.2 s of every
# process that loads the code location).

# This module's code, in the cache's key: a change to how SQL is read makes the results kept before it stale.
_READER = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class TableSql:
    """The result of reading one table's SQL."""

    table: str
    reads: frozenset[str]  # schema-qualified warehouse tables read, its own excluded
    columns: tuple[str, ...]
    lineage: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)  # column → ((table, column),)

    def to_json(self) -> dict:
        return {"table": self.table, "reads": sorted(self.reads), "columns": list(self.columns),
                "lineage": {column: [list(origin) for origin in origins] for column, origins in self.lineage.items()}}

    @classmethod
    def from_json(cls, data: dict) -> TableSql:
        return cls(data["table"], frozenset(data["reads"]), tuple(data["columns"]),
                   {column: tuple(tuple(origin) for origin in origins) for column, origins in data["lineage"].items()})


def read_table_sql_cached(cache: Path | None, table: str, texts: Iterable[str], owns: Iterable[str] = (),
                          schema: Mapping[str, Iterable[str]] | None = None,
                          inputs: Mapping[str, Iterable[str]] | None = None, dialect: str = "duckdb") -> TableSql:
    """:func:`read_table_sql`, kept in the folder ``cache`` under a digest of everything it depends on (the SQL, the
    schemas, sqlglot's version and this module's own code): tracing a pipeline's scripts takes ~0.4 s, which every
    process loading the code location would pay again. A cache that cannot be written is skipped."""
    texts = list(texts)
    arguments = [table, texts, sorted(owns), {k: list(v) for k, v in sorted((schema or {}).items())},
                 {k: list(v) for k, v in sorted((inputs or {}).items())}, dialect, version("sqlglot"), _READER]
    digest = hashlib.sha256(json.dumps(arguments).encode()).hexdigest()[:32]
    path = cache / f"{table}-{digest}.json" if cache is not None else None
    if path is not None and path.is_file():
        try:
            return TableSql.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError):
            pass  # a damaged entry is read again from the SQL
    result = read_table_sql(table, texts, owns, schema, inputs, dialect)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}")
            partial.write_text(json.dumps(result.to_json()), encoding="utf-8")
            os.replace(partial, path)
        except OSError:
            pass
    return result


def _name(table: exp.Table) -> str:
    return f"{table.db}.{table.name}" if table.db else table.name


def _statements(texts: Iterable[str], dialect: str) -> list[exp.Expression]:
    import sqlglot

    return [statement for text in texts for statement in sqlglot.parse(text, read=dialect) if statement is not None]


def _written(statement: exp.Expression) -> str | None:
    """The relation a CREATE … AS or INSERT INTO statement fills, if it is one."""
    from sqlglot import exp

    if isinstance(statement, (exp.Create, exp.Insert)) and isinstance(statement.expression, exp.Query):
        target = statement.this.find(exp.Table)
        return _name(target) if target is not None else None
    return None


def read_table_sql(table: str, texts: Iterable[str], owns: Iterable[str] = (),
                   schema: Mapping[str, Iterable[str]] | None = None, inputs: Mapping[str, Iterable[str]] | None = None,
                   dialect: str = "duckdb") -> TableSql:
    """Read the SQL ``texts`` that build ``table`` (and the other tables of ``owns``). ``schema``: the columns of
    the upstream tables the SQL reads (sqlglot needs them to tell which relation an unqualified column belongs to);
    ``inputs``: the temporary tables the step's runner fills before the SQL runs, with their columns."""
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.lineage import lineage as sqlglot_lineage

    statements = _statements(texts, dialect)
    owned = {table, *owns}
    # Each relation the script fills, as one query over upstream tables only: a statement's query with the relations
    # filled before it put in as subqueries, in script order (a table read while it is being rebuilt is its earlier
    # state, a leaf). A table's rows: its first INSERT, else its CREATE … AS.
    defined: dict[str, exp.Query] = {
        name: exp.select(*(exp.alias_(exp.null(), column) for column in columns))
        for name, columns in (inputs or {}).items()
    }
    inserted: set[str] = set()
    for statement in statements:
        name = _written(statement)
        if name is None or ("." in name and name not in owned) or name in inserted:
            continue
        earlier = {other: query for other, query in defined.items() if other != name}
        defined[name] = exp.expand(statement.expression, earlier, dialect=dialect, copy=True)
        if isinstance(statement, exp.Insert):
            inserted.add(name)
    reads = frozenset(  # a schema named by CREATE SCHEMA is no table read
        _name(t) for statement in statements for t in statement.find_all(exp.Table)
        if t.db and t.name and _name(t) not in owned
    )
    if table not in defined:
        return TableSql(table, reads, ())
    query = _through_star(defined[table])
    columns = tuple(query.named_selects)
    leaves = {**(schema or {}), **{name: _through_star(defined[name]).named_selects for name in owned if name in defined}}
    try:  # every column at once: sqlglot qualifies the query once
        nodes = sqlglot_lineage(None, query, schema=_schema(leaves), dialect=dialect, trim_selects=False)
    except SqlglotError:
        nodes = {}  # sqlglot cannot trace it: no lineage rather than a wrong one
    lineage = {
        column: tuple(sorted({(_name(n.source), n.name.rsplit(".", 1)[-1]) for n in node.walk()
                              if isinstance(n.source, exp.Table) and n.source.db and not n.downstream
                              and _name(n.source) not in owned}))
        for column, node in nodes.items()
    }
    return TableSql(table, reads, columns, lineage)


def _through_star(query: exp.Query) -> exp.Query:
    """``SELECT * FROM (q) [WHERE …] [LIMIT …]`` → ``q`` (the same columns)."""
    from sqlglot import exp

    while (isinstance(query, exp.Select) and query.is_star and not query.args.get("joins")
           and isinstance(getattr(query.args.get("from_"), "this", None), exp.Subquery)):
        query = query.args["from_"].this.this
    return query


def _schema(columns: Mapping[str, Iterable[str]]) -> dict:
    """sqlglot's nested schema ({db: {table: {column: type}}}) of schema-qualified tables; types do not matter."""
    nested: dict = {}
    for name, names in columns.items():
        db, _, table = name.rpartition(".")
        nested.setdefault(db, {})[table] = {column: "TEXT" for column in names}
    return nested
