"""SQL-backed asset checks.

A check is a query that returns one row: ``violations`` (0 means passed), ``details`` (text that
names what is wrong: the column, the file, sample keys) and optionally ``severity`` ('ERROR' or
'WARN') when the query itself decides how serious the finding is. The builders below write the
query for the common rules; anything else is a SQL file under ``sql/``.

A check runs in its asset's own step when it can (``in_step``: the asset declares it in ``check_specs`` and calls
``evaluate_checks``), else in one ``@multi_asset_check`` step per asset (``sql_asset_checks``). ERROR checks are
blocking: when one fails, its step fails and the assets downstream of it do not run.
"""


from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import duckdb

from etl_platform.warehouse.base import WAREHOUSE_POOL

SAMPLE_SIZE = 5


@dataclass(frozen=True)
class SqlCheck:
    name: str
    description: str
    sql: str | Callable[[Any], str]
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR
    additional_deps: tuple[dg.AssetKey, ...] = field(default=())
    resource_keys: frozenset[str] = frozenset()
    sql_file: str | None = None  # where the query lives, when it is a SQL file (named in errors)
    # Tables ``sql`` reads that a first run may not have yet (an incremental step's state): without them the check
    # runs ``sql_without_state`` instead (the same rule over every row).
    needs: tuple[str, ...] = ()
    sql_without_state: str | None = None

    @property
    def blocking(self) -> bool:
        return self.severity == dg.AssetCheckSeverity.ERROR

    def query(self, resources: Any, conn: Any = None) -> str:
        """The check's SQL; a callable ``sql`` is given the run's resources (``resources.warehouse``, ...)."""
        if self.needs and conn is not None and not all(conn.table_exists(table) for table in self.needs):
            return self.sql_without_state
        return self.sql(resources) if callable(self.sql) else self.sql


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def unique(table: str, columns: Sequence[str], name: str = "primary_key_unique",
           scope: str | None = None) -> SqlCheck:
    """One row per key. ``scope``: CTEs ending in ``_checked``, the rows to look at (an incremental table's checks
    look at the keys its last run changed: ``etl_platform.medallion.checks``); default: the whole table."""
    key = ", ".join(_ident(c) for c in columns)
    sample = " || '/' || ".join(f"coalesce(CAST({_ident(c)} AS VARCHAR), 'NULL')" for c in columns)
    rows = "_checked" if scope else table
    return SqlCheck(
        name,
        f"One row per ({', '.join(columns)}) in {table}"
        + (" (the keys its last run changed; every key after a full refresh)." if scope else "."),
        f"""
        WITH {scope + ',' if scope else ''} dup AS (SELECT {key}, count(*) AS copies FROM {rows} GROUP BY ALL
                                                     HAVING count(*) > 1)
        SELECT coalesce(sum(copies - 1), 0) AS violations,
               'duplicate keys (key: copies): ' || coalesce(string_agg({sample} || ': ' || copies, ', ')
                   FILTER (WHERE rn <= {SAMPLE_SIZE}), '') AS details
        FROM (SELECT *, row_number() OVER (ORDER BY copies DESC) AS rn FROM dup)
        """,
    )


SCOPED = " (the rows its last run changed; every row after a full refresh)"


def _rows(table: str, scope: str | None) -> tuple[str, str]:
    """``WITH`` clause and relation of the rows a check looks at: ``scope``'s ``_checked`` rows, or the table."""
    return (f"WITH {scope} ", "_checked") if scope else ("", table)


def no_null(table: str, columns: Sequence[str], name: str = "required_not_null", scope: str | None = None) -> SqlCheck:
    """``scope``: CTEs ending in ``_checked`` holding the rows to look at (with these columns), as for ``unique``."""
    counts = ", ".join(f"count(*) FILTER (WHERE {_ident(c)} IS NULL) AS {_ident(c)}" for c in columns)
    total = " + ".join(_ident(c) for c in columns)
    detail = " || ', ' || ".join(f"'{c}: ' || {_ident(c)}" for c in columns)
    with_, rows = _rows(table, scope)
    return SqlCheck(
        name,
        f"Required columns of {table} are never NULL: {', '.join(columns)}" + (SCOPED if scope else "") + ".",
        f"{with_}SELECT {total} AS violations, 'NULL values per column: ' || {detail} AS details "
        f"FROM (SELECT {counts} FROM {rows})",
    )


def all_in_range(table: str, ranges: dict[str, tuple[float | None, float | None]], name: str,
                 scope: str | None = None) -> SqlCheck:
    conditions = []
    for column, (low, high) in ranges.items():
        parts = ([f"{_ident(column)} < {low}"] if low is not None else []) + (
            [f"{_ident(column)} > {high}"] if high is not None else []
        )
        conditions.append((column, " OR ".join(parts), low, high))
    counts = ", ".join(f"count(*) FILTER (WHERE {cond}) AS {_ident(col)}" for col, cond, _, _ in conditions)
    total = " + ".join(_ident(col) for col, *_ in conditions)
    detail = " || ', ' || ".join(
        f"'{col} outside [{'' if low is None else low}, {'' if high is None else high}]: ' || {_ident(col)}"
        for col, _, low, high in conditions
    )
    with_, rows = _rows(table, scope)
    return SqlCheck(
        name,
        f"Values of {table} lie in their ranges: "
        + ", ".join(f"{col} in [{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
                    for col, _, lo, hi in conditions) + (SCOPED if scope else "") + ".",
        f"{with_}SELECT {total} AS violations, {detail} AS details FROM (SELECT {counts} FROM {rows})",
    )


# information_schema's type names of every engine → DuckDB's (in which the expected types are written).
_DUCKDB_TYPE_NAME = (
    "CASE lower(data_type) WHEN 'text' THEN 'VARCHAR' WHEN 'character varying' THEN 'VARCHAR' "
    "WHEN 'double precision' THEN 'DOUBLE' WHEN 'real' THEN 'FLOAT' WHEN 'numeric' THEN 'DECIMAL' "
    "WHEN 'timestamp without time zone' THEN 'TIMESTAMP' ELSE upper(data_type) END"
)


def column_types(table: str, expected: dict[str, str], name: str = "column_types") -> SqlCheck:
    schema_name, table_name = table.split(".")
    values = ", ".join(f"('{column}', '{data_type}')" for column, data_type in expected.items())
    return SqlCheck(
        name,
        f"{table} has the declared columns and types: "
        + ", ".join(f"{c} {t}" for c, t in expected.items()) + ".",
        f"""
        WITH expected(column_name, data_type) AS (VALUES {values}),
        actual AS (SELECT column_name, {_DUCKDB_TYPE_NAME} AS data_type FROM information_schema.columns
                   WHERE table_schema = '{schema_name}' AND table_name = '{table_name}')
        SELECT count(*) AS violations,
               coalesce(string_agg(e.column_name || ': expected ' || e.data_type || ', found '
                   || coalesce(a.data_type, 'no such column'), '; '), '') AS details
        FROM expected AS e LEFT JOIN actual AS a USING (column_name)
        WHERE a.data_type IS DISTINCT FROM e.data_type
        """,
    )


def sql_file_check(
    name: str,
    description: str,
    path: str,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    additional_deps: Sequence[dg.AssetKey] = (),
) -> SqlCheck:
    """A check whose query lives in a SQL file (read through the warehouse, so ``sql_dir`` applies)."""
    return SqlCheck(
        name, description, lambda resources: resources.warehouse.sql_text(path), severity, tuple(additional_deps),
        sql_file=path,
    )


def in_step(check: SqlCheck) -> bool:
    """Whether ``check`` can run in its asset's own step, right after the asset (``check_specs``): it reads the
    asset's table and needs nothing else. A check that reads other assets (``additional_deps``: they may be
    materialized later in the run) or needs other resources runs in a step of its own (``sql_asset_checks``)."""
    return not check.additional_deps and not check.resource_keys


def check_specs(asset_key: dg.AssetKey, checks: Sequence[SqlCheck]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(check.name, asset=asset_key, description=check.description, blocking=check.blocking,
                          additional_deps=list(check.additional_deps))
        for check in checks
    ]


def evaluate_checks(conn, asset_key: dg.AssetKey, checks: Sequence[SqlCheck], resources: Any, log: Any,
                    selected: Any = None) -> Iterator[dg.AssetCheckResult]:
    """Run ``checks`` (those of ``selected``, the run's selected check keys, when given) and yield their results. A
    check whose query cannot run is a failed ERROR check that says why; the other checks still run. On an engine
    where each query is a job of its own (``checks_in_one_query``: Spark) the checks run as one query first."""
    chosen = [check for check in checks
              if selected is None or dg.AssetCheckKey(asset_key, check.name) in selected]
    together = (_evaluate_together(conn, chosen, resources, log)
                if getattr(conn, "checks_in_one_query", False) and len(chosen) > 1 else {})
    for check in chosen:
        try:
            row = together.get(check.name) or _evaluate(conn, check, resources)
        except CheckQueryError as error:
            log.error(str(error))
            yield dg.AssetCheckResult(
                asset_key=asset_key, check_name=check.name, passed=False,
                severity=dg.AssetCheckSeverity.ERROR, description=str(error),
                metadata={"error": dg.MetadataValue.text(str(error))},
            )
            continue
        violations = int(row["violations"] or 0)
        severity = dg.AssetCheckSeverity(row.get("severity") or check.severity.value)
        yield dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=check.name,
            passed=violations == 0,
            severity=severity,
            description=(row.get("details") or check.description) if violations else check.description,
            metadata={
                "violations": dg.MetadataValue.int(violations),
                "details": dg.MetadataValue.text(str(row.get("details") or "")),
            },
        )


def sql_asset_checks(asset_key: dg.AssetKey, checks: Sequence[SqlCheck]) -> dg.AssetChecksDefinition:
    """One ``@multi_asset_check`` step that runs ``checks`` against the asset's table."""

    @dg.multi_asset_check(
        specs=check_specs(asset_key, checks),
        name=f"{'__'.join(asset_key.path)}_checks",
        can_subset=True,
        pool=WAREHOUSE_POOL,
        required_resource_keys={"warehouse"}.union(*(check.resource_keys for check in checks)),
    )
    def _checks(context: dg.AssetCheckExecutionContext):
        with context.resources.warehouse.connect() as conn:
            yield from evaluate_checks(conn, asset_key, checks, context.resources, context.log,
                                       selected=context.selected_asset_check_keys)

    return _checks


class CheckQueryError(RuntimeError):
    """A check's query could not be run or did not return its one row."""


def _evaluate_together(conn, checks: Sequence[SqlCheck], resources: Any, log: Any) -> dict[str, dict[str, Any]]:
    """The one row of each of ``checks``, by name, from a single query (their queries as subqueries, ``UNION ALL``):
    on Spark a query is a job of its own, and an asset's checks read the same tables. A check whose query does not
    name ``violations`` or does not return one row is left out (it runs alone and its error names it); when the
    query fails, every check runs alone."""
    import sqlglot  # not imported by the code location (test_automation): only Spark's checks parse here

    parts, names = [], []
    for check in checks:
        try:
            sql = check.query(resources, conn)
            columns = sqlglot.parse_one(sql, read="duckdb").named_selects
        except Exception:  # the check alone says what is wrong with it
            continue
        if "violations" not in columns:
            continue
        optional = {name: f"CAST({_ident(name)} AS VARCHAR)" if name in columns else "CAST(NULL AS VARCHAR)"
                    for name in ("details", "severity")}
        parts.append(f"SELECT {len(names)} AS _check, CAST(violations AS BIGINT) AS violations, "
                     f"{optional['details']} AS details, {optional['severity']} AS severity "
                     f"FROM ({sql}) AS _check_{len(names)}")
        names.append(check.name)
    if len(parts) < 2:
        return {}
    try:
        rows = conn.query("\nUNION ALL\n".join(parts), f"the checks {', '.join(names)} as one query").fetchall()
    except Exception as error:
        log.debug(f"the checks {', '.join(names)} as one query failed ({type(error).__name__}); running them one "
                  "by one")
        return {}
    found: dict[int, list[tuple]] = {}
    for row in rows:
        found.setdefault(row[0], []).append(row)
    return {names[index]: {"violations": only[0][1], "details": only[0][2], "severity": only[0][3]}
            for index, only in found.items() if len(only) == 1}


def _evaluate(conn, check: SqlCheck, resources: Any) -> dict[str, Any]:
    """The check's one row as a dict, or :class:`CheckQueryError` naming the check, its SQL and the problem."""
    where = f"SQL file {check.sql_file}" if check.sql_file else "its built-in SQL"
    try:
        cursor = conn.query(check.query(resources, conn), f"check {check.name} ({where})")
        names = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall()
    except Exception as error:
        if isinstance(error, duckdb.OutOfMemoryException) or "No space left on device" in str(error):
            raise  # the machine's limits, not the check's: the warehouse explains them and the step fails
        raise CheckQueryError(f"check {check.name} could not run ({where}): {type(error).__name__}: "
                              f"{str(error)[:500]}") from error
    if len(rows) != 1 or "violations" not in names:
        raise CheckQueryError(f"check {check.name} ({where}) must return one row with a 'violations' column; "
                              f"it returned {len(rows)} row(s) with columns {names}")
    return dict(zip(names, rows[0]))
