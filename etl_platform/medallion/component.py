"""A folder of SQL models as assets with checks: a new pipeline from SQL files and YAML, no Python (docs/dg.md).

    # etl_platform/defs/content_insights/defs.yaml
    type: etl_platform.components.SqlMedallion
    attributes:
      sql_folder: sql               # relative to this file: <schema>/<table>.sql, each one SELECT
      checks_file: checks.yaml      # optional: the tables' checks and their severities

Each ``<schema>/<table>.sql`` holds one SELECT; its asset ``<schema>/<table>`` builds the warehouse table
``<schema>.<table>`` from it (the table replaced in one transaction). Its dependencies are the tables the SELECT
reads (sqlglot): a model of the folder, or any other asset of the location named like its table (``gold.viewing_fact``
→ ``gold/viewing_fact``). Each materialization carries the row count, the column schema and ``dagster/column_lineage``
(the columns of the tables read come from the warehouse at that moment). The SQL is DuckDB's dialect; the
PostgreSQL and Spark warehouses compile it as they compile the reference pipeline's (docs/engines.md).

The checks file maps a table to its checks (an unknown key, table or column is an error naming it, at load):

    insights.genre_daily:
      - unique: [view_date, primary_genre]
      - not_null: [view_date, sessions]
      - accepted_values: {column: primary_genre, values: [drama, comedy], severity: WARN}
      - range: {column: sessions, min: 0}
      - row_count_min: 1
      - sql: SELECT * FROM insights.genre_daily WHERE watch_hours > sessions * 24   # rows that break the rule
        name: watch_hours_plausible

ERROR (the default) checks are blocking: a failure fails the step, and the models below it do not run.
"""

import importlib
import re
from pathlib import Path
from typing import Literal

import dagster as dg
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from etl_platform.errors import ConfigurationError, validation_details
from etl_platform.medallion.lineage import read_table_sql
from etl_platform.quality import SqlCheck, all_in_range, check_specs, evaluate_checks, no_null, unique
from etl_platform.warehouse import WAREHOUSE_POOL, Warehouse, table_metadata
from etl_platform.warehouse.base import sql_string

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RULES = ("unique", "not_null", "accepted_values", "range", "row_count_min", "sql")  # a checks-file entry holds one


class _Check(BaseModel):
    """One entry of a table's list in the checks file: exactly one rule, and optionally a name and severity."""

    model_config = ConfigDict(extra="forbid")

    unique: list[str] | None = None
    not_null: list[str] | None = None
    accepted_values: dict | None = None  # {column, values}
    range: dict | None = None  # {column, min, max}
    row_count_min: int | None = Field(default=None, ge=0)
    sql: str | None = None  # a SELECT of the rows that break the rule
    name: str | None = None
    severity: Literal["ERROR", "WARN"] = "ERROR"

    @model_validator(mode="after")
    def _one_rule(self) -> "_Check":
        rules = self.rules()
        if len(rules) != 1:
            raise ValueError(f"give exactly one rule of {', '.join(RULES)} (found: {', '.join(rules) or 'none'})")
        return self

    def rules(self) -> list[str]:
        return [rule for rule in RULES if getattr(self, rule) is not None]


def _ident(name: str) -> str:
    if not NAME.match(name):
        raise ConfigurationError(f"{name!r} is not a column name (letters, digits and _)")
    return f'"{name}"'


def build_check(table: str, entry: _Check, where: str) -> SqlCheck:
    """The SqlCheck of one checks-file entry (``where`` names the file and entry in errors)."""
    (rule,) = entry.rules()
    severity = dg.AssetCheckSeverity(entry.severity)
    try:
        for column in (entry.unique or entry.not_null or []):
            _ident(column)
        if rule == "unique":
            check = unique(table, entry.unique, name=entry.name or f"unique_{'_'.join(entry.unique)}")
        elif rule == "not_null":
            check = no_null(table, entry.not_null, name=entry.name or "not_null")
        elif rule == "range":
            spec = dict(entry.range)
            column = spec.pop("column")
            low, high = spec.pop("min", None), spec.pop("max", None)
            if spec or (low is None and high is None):
                raise ConfigurationError(f"range takes column, min and/or max (got {sorted(entry.range)})")
            _ident(column)
            check = all_in_range(table, {column: (low, high)}, name=entry.name or f"{column}_in_range")
        elif rule == "accepted_values":
            spec = dict(entry.accepted_values)
            column, values = spec.pop("column"), spec.pop("values")
            if spec or not isinstance(values, list) or not values:
                raise ConfigurationError("accepted_values takes column and a non-empty list of values")
            listed = ", ".join(sql_string(str(v)) for v in values)
            check = SqlCheck(
                entry.name or f"{column}_accepted_values",
                f"{table}.{column} is one of {', '.join(map(str, values))} (or NULL).",
                f"SELECT count(*) AS violations, 'values not accepted: ' || coalesce(string_agg(DISTINCT "
                f"CAST({_ident(column)} AS VARCHAR), ', '), '') AS details FROM {table} "
                f"WHERE CAST({_ident(column)} AS VARCHAR) NOT IN ({listed})")
        elif rule == "row_count_min":
            check = SqlCheck(
                entry.name or "row_count_min", f"{table} has at least {entry.row_count_min:,} row(s).",
                f"SELECT CASE WHEN count(*) < {entry.row_count_min} THEN 1 ELSE 0 END AS violations, "
                f"'rows: ' || count(*) AS details FROM {table}")
        else:
            if not entry.name:
                raise ConfigurationError("an sql check needs a name")
            check = SqlCheck(
                entry.name, f"No row of: {' '.join(entry.sql.split())[:300]}",
                f"SELECT count(*) AS violations, 'rows breaking the rule: ' || count(*) AS details "
                f"FROM ({entry.sql.strip().rstrip(';')}) AS breaking")
    except (KeyError, ConfigurationError) as error:
        text = f"missing key {error}" if isinstance(error, KeyError) else str(error)
        raise ConfigurationError(f"{where}: {rule}: {text}") from None
    if not NAME.match(check.name):
        raise ConfigurationError(f"{where}: check name {check.name!r}: letters, digits and _ only")
    return SqlCheck(check.name, check.description, check.sql, severity)


def load_checks(path: Path, tables: set[str]) -> dict[str, list[SqlCheck]]:
    """The checks file at ``path`` ({table: [entry, ...]}) as each model table's checks."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigurationError(f"{path}: not YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{path}: expected a mapping of table → list of checks")
    checks: dict[str, list[SqlCheck]] = {}
    for table, entries in raw.items():
        if table not in tables:
            raise ConfigurationError(f"{path}: {table!r} is not a model of this folder ({', '.join(sorted(tables))})")
        if not isinstance(entries, list):
            raise ConfigurationError(f"{path}: {table}: expected a list of checks")
        for number, entry in enumerate(entries, start=1):
            where = f"{path}: {table}, check {number}"
            try:
                parsed = _Check.model_validate(entry)
            except ValidationError as error:
                raise ConfigurationError(f"{where}: {validation_details(error)}") from None
            checks.setdefault(table, []).append(build_check(table, parsed, where))
        names = [check.name for check in checks.get(table, [])]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"{path}: {table}: two checks share a name ({', '.join(names)}): give `name:`")
    return checks


def discover_models(folder: Path) -> dict[str, Path]:
    """``<schema>/<table>.sql`` below ``folder`` → {"schema.table": path}."""
    if not folder.is_dir():
        raise ConfigurationError(f"sql_folder {folder} is not a folder")
    models = {}
    for path in sorted(folder.glob("*/*.sql")):
        schema, table = path.parent.name, path.stem
        if not (NAME.match(schema) and NAME.match(table)):
            raise ConfigurationError(f"{path}: <schema>/<table>.sql with letters, digits and _ only")
        models[f"{schema}.{table}"] = path
    if not models:
        raise ConfigurationError(f"sql_folder {folder} holds no <schema>/<table>.sql file")
    return models


def _select(path: Path, text: str) -> str:
    """The model's SELECT (``text``, the file's); anything else (several statements, DDL, a syntax error) is an
    error naming the file."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError

    try:
        statements = [s for s in sqlglot.parse(text, read="duckdb") if s is not None]
    except ParseError as error:
        raise ConfigurationError(f"{path}: not valid SQL: {str(error).splitlines()[0][:300]}") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        kinds = ", ".join(type(s).__name__.upper() for s in statements) or "nothing"
        raise ConfigurationError(f"{path}: a model is one SELECT (found: {kinds})")
    return text.strip().rstrip(";").strip()


def _description(text: str, default: str) -> str:
    comments = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        comments.append(line[2:].strip())
    return " ".join(comments) or default


def model_asset(table: str, path: Path, checks: list[SqlCheck], group: str, kinds: set[str]) -> dg.AssetsDefinition:
    """The asset of the model ``path`` building ``table``: its SQL read once, here (its SELECT, its description,
    the tables it reads: its dependencies)."""
    schema, name = table.split(".")
    key = dg.AssetKey([schema, name])
    text = path.read_text(encoding="utf-8")
    script = (f"CREATE SCHEMA IF NOT EXISTS {schema};\nDROP TABLE IF EXISTS {table};\n"
              f"CREATE TABLE {table} AS\n{_select(path, text)};\n")
    upstream = sorted(read_table_sql(table, [script]).reads)

    @dg.asset(key=key, deps=[dg.AssetKey(t.split(".")) for t in upstream], group_name=group, kinds=kinds,
              check_specs=check_specs(key, checks), pool=WAREHOUSE_POOL,
              description=_description(text, f"{table}, built by {path.name}"),
              metadata={"sql_file": dg.MetadataValue.path(str(path))})
    def sql_model(context: dg.AssetExecutionContext, warehouse: Warehouse):
        with warehouse.connect() as conn:
            warehouse.run_sql(conn, script, str(path))
            # the lineage, with the columns the tables it read have now (sqlglot needs them for unqualified names)
            read = read_table_sql(table, [script], schema={
                t: [column for column, _ in conn.columns(t)] for t in upstream if conn.table_exists(t)})
            lineage = dg.TableColumnLineage(deps_by_column={
                column: [dg.TableColumnDep(asset_key=dg.AssetKey(t.split(".")), column_name=c) for t, c in origins]
                for column, origins in read.lineage.items() if origins})
            metadata = table_metadata(conn, table, **{"dagster/column_lineage": lineage})
            context.log.info(f"{table}: {metadata['dagster/row_count'].value:,} rows")
            yield dg.MaterializeResult(metadata=metadata)
            yield from evaluate_checks(conn, key, checks, None, context.log, selected=context.selected_asset_check_keys)

    return sql_model


STARTER_MODEL = """-- What this table holds (the comment lines at the top are the asset's description).
SELECT view_date, count(*) AS sessions
FROM gold.viewing_fact
GROUP BY view_date
"""
STARTER_CHECKS = """# Each table's checks: unique, not_null, accepted_values, range, row_count_min, sql (docs/dg.md).
insights.daily_sessions:
  - unique: [view_date]
  - range: {column: sessions, min: 1}
"""


class SqlMedallionScaffolder(dg.Scaffolder):
    """``dg scaffold defs etl_platform.components.SqlMedallion <folder>``: the defs.yaml, a starter model
    (``sql/insights/daily_sessions.sql``) and its checks file, to edit."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        dg.scaffold_component(request, {"sql_folder": "sql", "checks_file": "checks.yaml"})
        models = request.target_path / "sql" / "insights"
        models.mkdir(parents=True, exist_ok=True)
        (models / "daily_sessions.sql").write_text(STARTER_MODEL, encoding="utf-8")
        (request.target_path / "checks.yaml").write_text(STARTER_CHECKS, encoding="utf-8")


@dg.scaffold_with(SqlMedallionScaffolder)
class SqlMedallion(dg.Component, dg.Model, dg.Resolvable):
    """A folder of SQL models as assets of the warehouse, with checks; dependencies and column lineage read from the
    SQL. Without ``models``, each ``<schema>/<table>.sql`` of the folder is one SELECT, rebuilt whole each run. With
    ``models`` (medallion/declaration.py), the tables are declared: their scripts, key (incremental), inputs and
    feeds, optionally with a landing contract (landing files and bronze), a checks module, a job and its schedule,
    and the sensors of declarative automation; the reference pipeline is declared so (docs/dg.md)."""

    sql_folder: str = "sql"
    project_sql_folder: str | None = None  # a folder of the project's sql/ instead (the warehouse's sql_dir applies)
    checks_file: str | None = None
    group_name: str | None = None  # "{layer}" stands for landing, bronze or the table's schema
    owners: list[str] | None = None
    models: dict[str, dict] | None = None
    landing: dict | None = None  # {contract: <module>, sensor: <name>}
    checks_module: str | None = None  # a module whose CHECKS maps asset keys to their SqlChecks
    job: dict | None = None  # {name, description, include_groups, schedule: {name, cron, timezone, description}}
    automation_sensor: str | None = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        base = Path(context.path)
        if self.models is not None:
            return self._declared(base)
        if self.landing or self.checks_module or self.job or self.automation_sensor or self.project_sql_folder:
            raise ConfigurationError(f"{base / 'defs.yaml'}: landing, checks_module, job, automation_sensor and "
                                     "project_sql_folder belong to a medallion with declared `models`")
        folder = base / self.sql_folder
        models = discover_models(folder)
        checks = load_checks(base / self.checks_file, set(models)) if self.checks_file else {}
        group = self.group_name or base.name
        return dg.Definitions(assets=[model_asset(table, path, checks.get(table, []), group, {"sql"})
                                      for table, path in models.items()])

    def _declared(self, base: Path) -> dg.Definitions:
        from etl_platform.medallion.assets import medallion_assets, separate_checks
        from etl_platform.medallion.automation import automation_definitions
        from etl_platform.medallion.declaration import Medallion
        from etl_platform.warehouse.engines import engine_name

        where = str(base / "defs.yaml")
        medallion = Medallion.from_attributes(self.model_dump(), base, where)
        checks: dict[dg.AssetKey, list[SqlCheck]] = {}
        if self.checks_module:
            try:
                module_checks = importlib.import_module(self.checks_module).CHECKS
            except (ImportError, AttributeError) as error:
                raise ConfigurationError(f"{where}: checks_module {self.checks_module!r}: {error}") from None
            for key, listed in module_checks.items():
                checks.setdefault(key, []).extend(listed)
        if self.checks_file:
            for table, listed in load_checks(base / self.checks_file, set(medallion.models)).items():
                checks.setdefault(medallion.key(table), []).extend(listed)
        jobs, schedules, sensors = automation_definitions(medallion)
        return dg.Definitions(assets=medallion_assets(medallion, engine_name(), checks),
                              asset_checks=separate_checks(checks), jobs=jobs, schedules=schedules, sensors=sensors)
