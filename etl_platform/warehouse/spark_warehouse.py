"""Spark as the warehouse: tables are Parquet folders in a lake (``<lake>/<layer>/<table>/``), SQL runs on Spark.

The session is dagster-pyspark's ``PySparkResource`` (shared with the upsert's pyspark backend, see
``etl_platform.spark_session``): ``local[*]`` here, a cluster with ``spark.master`` set. The catalog is Spark's
in-memory one, rebuilt from the lake's folders when a session connects, so the lake is the whole state.

Parquet tables have no transactions and no DELETE/UPDATE. Every change of a table is one atomic step of its own
commit log (``etl_platform.warehouse.lake``), and the session gives the shared SQL what it needs:

- ``CREATE OR REPLACE TABLE t AS q``, ``DELETE FROM t WHERE c`` and ``ALTER TABLE t ADD COLUMN`` write t's new
  rows as a new version, committed by creating one file (DELETE and ALTER only when rows match / a column is new):
  readers see the old version or the new one, a failed or killed writer leaves t as it was;
- ``INSERT INTO t …`` and appended Arrow batches are written beside t, then moved into it in one rename;
- ``information_schema.columns`` / ``.tables`` are answered from the catalog, with DuckDB's type names;
- appended Arrow batches are written by Spark (``createDataFrame`` from Arrow), 500,000 rows per write.

The lake is any path or URL Spark can write (local, a shared mount, ``s3a://``, ``abfss://``, ``gs://``): its
folders are listed, renamed and deleted through Hadoop's FileSystem in the JVM, never with local file calls.

Each table is always whole, but there is no transaction across tables: a run that dies between two statements of
one asset can leave one of its tables changed and another not; the next run rebuilds them. ``docs/engines.md``
says what this means for each layer.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlglot
from pydantic import Field
from sqlglot import exp

from etl_platform import settings
from etl_platform.spark_session import SparkSessionResource, apply_sql_settings, spark_session
from etl_platform.warehouse.base import LAYERS, SqlScriptError, Warehouse, WarehouseSession
from etl_platform.warehouse.dialects import Statement, compile_script, is_temporary, shorten
from etl_platform.warehouse.lake import LakeFiles, LakeTable

MACROS_FILE = "macros.spark.sql"
# A folder of the lake that is a schema (not hidden, not the platform's own `_scratch`, `_commits`, ...).
_SCHEMA_FOLDER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
LAKE_ENV = "ETL_PLATFORM_LAKE"
_MACROS_SETTING = "spark.etl_platform.macros"
_SYNCED: dict[int, str] = {}  # Spark session → the lake its catalog was last made to match
_DATABASES: dict[tuple[int, str], str] = {}  # (Spark session, database) → the folder it was declared for
_REGISTERED: dict[tuple[int, str], str] = {}  # (Spark session, layer.table) → the folder the catalog reads it from
STAGING_DATABASE = "etl_append_staging"
_STAGING_TABLES: dict[tuple[int, str, str], str] = {}  # (Spark session, staging folder, schema) → its staging table
_INFORMATION_SCHEMA = {"columns": "_etl_information_schema_columns", "tables": "_etl_information_schema_tables"}


def duckdb_type_name(data_type) -> str:
    """A Spark type in DuckDB's name (the name the contract and the checks use)."""
    name = data_type.simpleString()
    simple = {"string": "VARCHAR", "bigint": "BIGINT", "int": "INTEGER", "smallint": "SMALLINT",
              "tinyint": "TINYINT", "double": "DOUBLE", "float": "FLOAT", "boolean": "BOOLEAN", "date": "DATE",
              "timestamp": "TIMESTAMP WITH TIME ZONE", "timestamp_ntz": "TIMESTAMP", "binary": "BLOB"}
    return simple.get(name, name.upper())  # decimal(p,s) → DECIMAL(P,S), as DuckDB names it


class SparkCursor:
    """A statement's result with the DB-API methods the platform uses (rows come through Arrow, so timestamps
    are timezone-aware, as on the other engines)."""

    def __init__(self, frame=None):
        self._frame = frame
        self._rows: list[tuple] | None = None

    @property
    def description(self):
        return [(field.name,) for field in self._frame.schema.fields] if self._frame is not None else None

    def fetchall(self) -> list[tuple]:
        if self._rows is None:
            if self._frame is None:
                self._rows = []
            else:
                table = self._frame.toArrow()
                self._rows = list(zip(*(column.to_pylist() for column in table.columns))) if table.num_columns else []
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self):
        rows = self.fetchall()
        if rows:
            self._rows = rows[1:]
            return rows[0]
        return None


class SparkWarehouseSession(WarehouseSession):
    engine = "spark"
    checks_in_one_query = True  # each query is a Spark job: an asset's checks run as one (quality.evaluate_checks)

    def __init__(self, spark, lake: str):
        self.raw = spark
        self.lake = lake.rstrip("/")
        self.files = LakeFiles(spark, self.lake)

    # -- statements -------------------------------------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> SparkCursor:
        return self.query(sql, "a statement", params)

    def query(self, sql: str, where: str = "a query", params: Sequence[Any] | None = None) -> SparkCursor:
        return self.run_statements(compile_script(sql, self.engine, where), where, params)

    def run_statements(self, statements: Sequence[Statement], where: str,
                       params: Sequence[Any] | None = None) -> SparkCursor:
        """Run Spark SQL statements in order; a failing one is named with ``where``, its number and the engine."""
        cursor = SparkCursor()
        for statement in statements:
            try:
                cursor = self._run(statement.sql, list(params) if params is not None else None)
            except SqlScriptError:
                raise
            except Exception as error:
                raise SqlScriptError(f"{where}, statement {statement.number} ({statement.source}) failed on spark: "
                                     f"{_first_line(error)}") from error
        return cursor

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # No transaction across tables on Spark: each change of one table is atomic (see the module's docstring).
        yield

    def _run(self, sql: str, params: list | None) -> SparkCursor:
        tree = sqlglot.parse_one(sql, read="spark")
        if isinstance(tree, exp.Create):
            kind = (tree.args.get("kind") or "").upper()
            if kind == "SCHEMA":  # sqlglot parses the schema's name as a table's db part
                self._ensure_database(tree.this.name or tree.this.db)
                return SparkCursor()
            if kind == "TABLE" and not is_temporary(tree):
                return self._create_table(tree, params)
            if kind == "VIEW" and is_temporary(tree) and tree.expression is not None:
                return self._temporary_table(tree, params)
        if isinstance(tree, exp.Drop) and (tree.args.get("kind") or "").upper() == "TABLE":
            for table in tree.args.get("tables") or [tree.this]:
                self.drop_table(table, if_exists=bool(tree.args.get("exists")))
            return SparkCursor()
        if isinstance(tree, exp.Insert) and isinstance(tree.this, (exp.Table, exp.Schema)):
            return self._insert(tree, params)
        if isinstance(tree, exp.Delete):
            return self._delete(tree, params)
        if isinstance(tree, exp.Alter):
            return self._alter(tree, sql, params)
        if any(table.db.lower() == "information_schema" for table in tree.find_all(exp.Table)):
            tree = self._with_information_schema(tree)
            sql = tree.sql(dialect="spark")
        return SparkCursor(self._sql(sql, params))

    def _sql(self, sql: str, params: list | None):
        return self.raw.sql(sql, args=params) if params else self.raw.sql(sql)

    # -- tables as folders ------------------------------------------------------------------------------------------

    def table_folder(self, table: exp.Table | str) -> str:
        table = _table(table)
        return f"{self.lake}/{table.db or 'default'}/{table.name}"

    def lake_table(self, table: exp.Table | str) -> LakeTable:
        table = _table(table)
        return LakeTable(self.files, self.table_folder(table), f"{table.db}.{table.name}")

    def schemas(self) -> list[str]:
        """The lake's schemas: bronze, silver and gold, and every other folder of the lake named like one (a
        declared medallion's own schema, ``mini``), so a new process finds their tables too."""
        found = [name for name in sorted(self.files.children(self.lake))
                 if _SCHEMA_FOLDER.match(name) and name not in (*LAYERS, STAGING_DATABASE)]
        return [*LAYERS, *found]

    def _ensure_database(self, name: str) -> None:
        """The schema's folder and its database in the catalog (declared once per Spark session and folder: every
        CREATE TABLE asks, and declaring costs ~0.1 s; the in-memory catalog never drops a database)."""
        folder = f"{self.lake}/{name}"
        self.files.mkdirs(folder)
        if _DATABASES.get((id(self.raw), name)) != folder:
            self.raw.sql(f"CREATE DATABASE IF NOT EXISTS `{name}` LOCATION '{folder}'")
            _DATABASES[(id(self.raw), name)] = folder

    def register(self, table: exp.Table | str, location: str | None = None, schema=None) -> None:
        """(Re)declare a table over its current version in the catalog (files found in its sub-folders too: each
        append is one). With the ``schema`` its files were written with, Spark need not read them to find it
        (~40 ms instead of ~150 ms); every column is declared nullable, as a schema read from Parquet is."""
        table = _table(table)
        name = f"`{table.db}`.`{table.name}`"
        location = location or self.lake_table(table).location()
        if location is None:
            raise SqlScriptError(f"table {table.db}.{table.name} has no committed version in {self.table_folder(table)}")
        self.raw.sql(f"DROP TABLE IF EXISTS {name}")
        if schema is None:
            self.raw.sql(f"CREATE TABLE {name} USING parquet OPTIONS (recursiveFileLookup 'true') LOCATION '{location}'")
        else:
            self.raw.catalog.createTable(name, path=location, source="parquet", schema=_nullable(schema),
                                         recursiveFileLookup="true")
        _REGISTERED[(id(self.raw), f"{table.db}.{table.name}")] = location

    def write_table(self, table: exp.Table | str, frame) -> None:
        """Replace a table with a DataFrame: a new version, committed in one step, then read by the catalog."""
        table = _table(table)
        lake_table = self.lake_table(table)
        version = lake_table.replace(lambda folder: self.files.write_parquet(frame, folder))
        self.register(table, lake_table.path(version), frame.schema)

    def write_empty_table(self, table: exp.Table | str, schema) -> None:
        """Replace a table with no rows of ``schema`` (a Spark StructType): one empty Parquet file written by
        pyarrow, with Spark's schema in its metadata (as Spark writes it), instead of a Spark job (~0.3 s each; a
        first run declares ~50 tables)."""
        table = _table(table)
        try:
            data = _empty_parquet(schema)
        except (TypeError, ValueError, NotImplementedError, pa.ArrowException):  # a type Arrow has no match for
            self.write_table(table, self.raw.createDataFrame([], schema))  # Spark's own write says what it thinks
            return
        lake_table = self.lake_table(table)
        version = lake_table.replace(lambda folder: self.files.write_bytes(f"{folder}/part-00000-empty.parquet", data))
        self.register(table, lake_table.path(version), schema)

    def _append(self, table: exp.Table, write) -> None:
        """``write(folder)`` writes the rows to append into ``folder`` (this process's staging folder of the
        table); they join the table in one rename. A table of the earlier layout is first rewritten as version 1
        (its files and a new append could not be told apart otherwise)."""
        lake_table = self.lake_table(table)
        version = lake_table.current()
        if version is None and lake_table.has_root_files():
            self.write_table(table, self.raw.table(f"`{table.db}`.`{table.name}`"))
            version = lake_table.current()
        staging = lake_table.staging_folder()
        try:
            write(staging)
        except BaseException:
            self.files.delete(staging)
            raise
        lake_table.publish_append(staging, version)
        self.raw.sql(f"REFRESH TABLE `{table.db}`.`{table.name}`")

    def _insert(self, tree: exp.Insert, params: list | None) -> SparkCursor:
        """``INSERT INTO t …`` as Spark runs it (by position or the named columns, Spark's casts), into a staging
        table of t's schema over this process's staging folder of t, which then joins t in one rename."""
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if not target.db:  # a temporary view (a script's temporary table): Spark's own INSERT
            return SparkCursor(self._sql(tree.sql(dialect="spark"), params))
        schema = self.raw.table(f"`{target.db}`.`{target.name}`").schema

        def write(folder: str) -> None:
            statement = tree.copy()
            staging = self._staging_table(folder, schema)
            if isinstance(statement.this, exp.Schema):
                statement.this.set("this", staging)
            else:
                statement.set("this", staging)
            self._sql(statement.sql(dialect="spark"), params)

        self._append(target, write)
        return SparkCursor()

    def _staging_table(self, folder: str, schema) -> exp.Table:
        """A catalog table of ``schema`` over ``folder``, in a database of its own (never a layer's): declared once
        per process, folder and schema (declaring one costs ~40 ms; an INSERT into it writes new files only)."""
        key = (id(self.raw), folder, schema.json())
        name = _STAGING_TABLES.get(key)
        if name is None:
            name = f"t_{hashlib.sha256(repr(key[1:]).encode()).hexdigest()[:16]}"
            self.raw.sql(f"CREATE DATABASE IF NOT EXISTS `{STAGING_DATABASE}`")
            self.raw.sql(f"DROP TABLE IF EXISTS `{STAGING_DATABASE}`.`{name}`")
            self.raw.catalog.createTable(f"`{STAGING_DATABASE}`.`{name}`", path=folder, source="parquet",
                                         schema=schema)
            _STAGING_TABLES[key] = name
        return exp.Table(this=exp.to_identifier(name), db=exp.to_identifier(STAGING_DATABASE))

    def drop_table(self, table: exp.Table | str, if_exists: bool = True) -> None:
        table = _table(table)
        if not table.db:  # an unqualified name is a script's temporary table, which is a temporary view on Spark
            self.raw.sql(f"DROP VIEW {'IF EXISTS ' if if_exists else ''}`{table.name}`")
            return
        self.raw.sql(f"DROP TABLE {'IF EXISTS ' if if_exists else ''}`{table.db}`.`{table.name}`")
        self.files.delete(self.table_folder(table))
        _REGISTERED.pop((id(self.raw), f"{table.db}.{table.name}"), None)

    def _create_table(self, tree: exp.Create, params: list | None) -> SparkCursor:
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        exists = self.table_exists(f"{target.db}.{target.name}")
        if tree.args.get("exists") and exists:
            return SparkCursor()
        if exists and not tree.args.get("replace"):
            raise SqlScriptError(f"table {target.db}.{target.name} already exists")
        query = tree.expression
        self._ensure_database(target.db)
        if query is not None:
            self.write_table(target, self._sql(query.sql(dialect="spark"), params))
        else:  # columns only: an empty table of that schema
            columns = [column for column in tree.this.expressions if isinstance(column, exp.ColumnDef)]
            ddl = ", ".join(f"`{c.name}` {c.args['kind'].sql(dialect='spark')}" for c in columns)
            self.write_empty_table(target, self.raw.createDataFrame([], ddl).schema)
        return SparkCursor()

    def _temporary_table(self, tree: exp.Create, params: list | None) -> SparkCursor:
        """A script's temporary table (compiled to a temporary view) holds its rows as they were when it was made,
        as on the other engines: the query runs now and its result is kept (a local checkpoint), not re-run when
        read after the tables it reads have changed."""
        frame = self._sql(tree.expression.sql(dialect="spark"), params).localCheckpoint(eager=True)
        frame.createOrReplaceTempView(tree.this.name)
        return SparkCursor()

    def _delete(self, tree: exp.Delete, params: list | None) -> SparkCursor:
        target = tree.this
        name = f"`{target.db}`.`{target.name}`"
        alias = f" AS `{target.alias}`" if target.alias else ""
        condition = tree.args.get("where").this.sql(dialect="spark") if tree.args.get("where") else "true"
        matching = self._sql(f"SELECT count(*) FROM {name}{alias} WHERE {condition}", params).collect()[0][0]
        if matching:
            # The rows the condition holds for leave; the rest (where it is false or NULL) stay, duplicates too. A
            # filter, not `EXCEPT ALL` of the matching rows (a shuffle of the whole table: 2-3x slower here).
            kept = f"SELECT * FROM {name}{alias} WHERE NOT coalesce({condition}, false)"
            self.write_table(target, self._sql(kept, params))
        return SparkCursor()

    def _alter(self, tree: exp.Alter, sql: str, params: list | None) -> SparkCursor:
        actions = tree.args.get("actions") or []
        if not all(isinstance(action, exp.ColumnDef) for action in actions):
            return SparkCursor(self._sql(sql, params))
        target = tree.this
        present = {name for name, _ in self.columns(f"{target.db}.{target.name}")}
        added = []
        for column in actions:
            if column.name in present:
                continue
            default = column.find(exp.DefaultColumnConstraint)
            value = default.this.sql(dialect="spark") if default is not None else "NULL"
            added.append(f"CAST({value} AS {column.args['kind'].sql(dialect='spark')}) AS `{column.name}`")
        if added:
            self.write_table(target, self.raw.sql(f"SELECT *, {', '.join(added)} FROM `{target.db}`.`{target.name}`"))
        return SparkCursor()

    def _with_information_schema(self, tree: exp.Expression) -> exp.Expression:
        """information_schema.columns / .tables as temporary views of the catalog, in DuckDB's type names."""
        columns, tables = [], []
        for layer in self.schemas():
            if not self.raw.catalog.databaseExists(layer):
                continue
            for listed in self.raw.sql(f"SHOW TABLES IN `{layer}`").collect():
                if listed.isTemporary:
                    continue
                tables.append((layer, listed.tableName))
                for position, field in enumerate(self.raw.table(f"`{layer}`.`{listed.tableName}`").schema.fields, 1):
                    columns.append((layer, listed.tableName, field.name, duckdb_type_name(field.dataType), position))
        self.raw.createDataFrame(
            columns, "table_schema STRING, table_name STRING, column_name STRING, data_type STRING, "
                     "ordinal_position INT").createOrReplaceTempView(_INFORMATION_SCHEMA["columns"])
        self.raw.createDataFrame(tables, "table_schema STRING, table_name STRING").createOrReplaceTempView(
            _INFORMATION_SCHEMA["tables"])

        def rename(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Table) and node.db.lower() == "information_schema":
                view = _INFORMATION_SCHEMA.get(node.name.lower())
                if view is None:
                    raise SqlScriptError(f"information_schema.{node.name} is not available on spark")
                return exp.Table(this=exp.to_identifier(view), alias=node.args.get("alias"))
            return node

        return tree.transform(rename)

    # -- the interface ----------------------------------------------------------------------------------------------

    def columns(self, table: str) -> list[tuple[str, str]]:
        schema_name, table_name = table.split(".")
        if not self.table_exists(table):
            return []
        return [(field.name, duckdb_type_name(field.dataType))
                for field in self.raw.table(f"`{schema_name}`.`{table_name}`").schema.fields]

    def table_exists(self, table: str) -> bool:
        schema_name, table_name = table.split(".")
        return self.raw.catalog.databaseExists(schema_name) and self.raw.catalog.tableExists(f"`{schema_name}`.`{table_name}`")

    def append_arrow(self, table: str, data: pa.Table | pa.RecordBatchReader, rows_per_write: int = 500_000) -> int:
        """Append Arrow data through Spark (columns matched by name, types cast to the table's), a bounded number
        of rows per write, so any lake Spark reaches takes it and memory does not grow with the input. All of it
        joins the table at once (one rename), or none of it."""
        from pyspark.sql.pandas.types import to_arrow_schema

        schema_name, table_name = table.split(".")
        target = self.raw.table(f"`{schema_name}`.`{table_name}`").schema
        arrow_schema = to_arrow_schema(target, timezone="UTC")
        batches = data.to_batches() if isinstance(data, pa.Table) else data
        rows = 0

        def write(folder: str) -> None:
            nonlocal rows
            pending, pending_rows = [], 0

            def flush() -> None:
                if pending:
                    chunk = pa.Table.from_batches(pending, schema=arrow_schema)
                    self.files.write_parquet(self.raw.createDataFrame(chunk, schema=target), folder, mode="append")
                    pending.clear()

            for batch in batches:
                if batch.num_rows:
                    pending.append(_conform(batch, arrow_schema))
                    pending_rows += batch.num_rows
                    rows += batch.num_rows
                if pending_rows >= rows_per_write:
                    flush()
                    pending_rows = 0
            flush()

        self._append(_table(table), write)
        return rows

    def arrow_reader(self, sql: str, batch_rows: int = 100_000) -> pa.RecordBatchReader:
        """The result is written to a scratch folder of the lake by Spark in files of at most ``batch_rows`` rows,
        then read back one file at a time, so a large result never has to fit in this process."""
        from pyspark.sql.pandas.types import to_arrow_schema

        statements = compile_script(sql, self.engine, "a query")
        for statement in statements[:-1]:
            self._run(statement.sql, None)
        frame = self._sql(statements[-1].sql, None)
        schema = to_arrow_schema(frame.schema, timezone="UTC")
        scratch = f"{self.lake}/_scratch/{uuid.uuid4().hex}"
        try:
            self.files.write_parquet(frame, scratch, maxRecordsPerFile=batch_rows)
            parts = [name for name in self.files.children(scratch, folders=False) if name.endswith(".parquet")]
        except BaseException:
            self.files.delete(scratch)
            raise

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for part in parts:
                    table = self.raw.read.parquet(f"{scratch}/{part}").toArrow()
                    yield from table.select(schema.names).cast(schema).to_batches()
            finally:
                self.files.delete(scratch)

        return pa.RecordBatchReader.from_batches(schema, batches())


def _statements(script: str) -> list[str]:
    """A Spark SQL script (the macros file, written in Spark's own dialect) split into statements."""
    text = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
    return [statement.strip() for statement in re.split(r";\s*(?:\n|$)", text) if statement.strip()]


def _nullable(schema):
    """``schema`` with every field nullable, nested ones too (what Spark reads from Parquet files)."""
    from pyspark.sql.types import StructType

    return StructType.fromJson(json.loads(re.sub(r'"(nullable|containsNull|valueContainsNull)":\s*false',
                                                 r'"\1":true', schema.json())))


def _empty_parquet(schema) -> bytes:
    """A Parquet file with no rows of the Spark ``schema``: Arrow's types for it, and Spark's schema in the key
    Spark itself writes, so reading it gives back exactly ``schema``'s types."""
    import io

    import pyarrow.parquet as pq
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = _nullable(schema)
    arrow_schema = to_arrow_schema(schema, timezone="UTC").with_metadata(
        {"org.apache.spark.sql.parquet.row.metadata": schema.json()})
    buffer = io.BytesIO()
    pq.write_table(arrow_schema.empty_table(), buffer, coerce_timestamps="us")
    return buffer.getvalue()


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for field in schema:
        index = batch.schema.get_field_index(field.name)
        column = batch.column(index) if index >= 0 else pa.nulls(batch.num_rows, field.type)
        arrays.append(column.cast(field.type) if column.type != field.type else column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _table(table: exp.Table | str) -> exp.Table:
    return table if isinstance(table, exp.Table) else exp.to_table(table)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    text = re.sub(r"\s*SQLSTATE: \w+", "", text)
    return (text.splitlines() or [""])[0][:500]


class SparkWarehouse(Warehouse):
    """Spark as the warehouse (``ETL_PLATFORM_ENGINE=spark``): Parquet tables in a lake folder, SQL on Spark."""

    engine = "spark"

    lake_path: str | None = Field(
        default=None,
        description=f"Folder (or a path Spark and the process both reach) holding <layer>/<table>/ Parquet folders. "
                    f"Default: ${LAKE_ENV}, else $ETL_PLATFORM_HOME/lake.",
    )
    spark: SparkSessionResource = Field(
        default_factory=SparkSessionResource,
        description="dagster-pyspark's session resource (spark_config: Spark settings such as spark.master); "
                    "the upsert's pyspark backend uses the same session.",
    )

    @property
    def lake(self) -> str:
        """The lake; a local folder as an absolute path (Spark resolves a relative one against its own warehouse
        folder, not the process's: every bronze step failed with UNABLE_TO_INFER_SCHEMA naming no path)."""
        lake = str(self.lake_path or os.environ.get(LAKE_ENV) or settings.platform_home() / "lake")
        return lake if "://" in lake else str(Path(lake).resolve())

    @contextmanager
    def connect(self) -> Iterator[SparkWarehouseSession]:
        spark = spark_session(self.spark, "SparkWarehouse.spark.spark_config['spark.master']")
        apply_sql_settings(spark)
        session = SparkWarehouseSession(spark, self.lake)
        self._sync_catalog(session)
        self._create_macros(spark)
        yield session

    def _create_macros(self, spark) -> None:
        """The macros are temporary functions of the Spark session: created once per session and macros text."""
        text = self.macros_text(MACROS_FILE)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        if spark.conf.get(_MACROS_SETTING, None) == digest:
            return
        for number, statement in enumerate(_statements(text), 1):
            try:
                spark.sql(statement)
            except Exception as error:
                raise SqlScriptError(f"{MACROS_FILE}, statement {number} failed on spark: {_first_line(error)}") from error
        spark.conf.set(_MACROS_SETTING, digest)

    def _sync_catalog(self, session: SparkWarehouseSession) -> None:
        """Make the catalog hold exactly the lake's tables, each at its current version (another process may have
        committed a newer one since). The in-memory catalog lives as long as the Spark session; another warehouse
        (another lake) in the same process may have used it, so the databases are re-pointed when the lake
        differs."""
        spark = session.raw
        other_lake = _SYNCED.get(id(spark)) != session.lake
        for layer in session.schemas():
            folder = f"{session.lake}/{layer}"
            if other_lake:
                session._ensure_database(layer)
            # SHOW TABLES reads names only (catalog.listTables resolves every table).
            listed = {row.tableName for row in spark.sql(f"SHOW TABLES IN `{layer}`").collect() if not row.isTemporary}
            present = {name for name in session.files.children(folder) if not name.startswith(".")}
            # Every table is external (declared over its folder): dropping one from the catalog keeps its files.
            # (Never DROP DATABASE: Spark's in-memory catalog deletes the database's folder with it.)
            # After another lake, every listed table is that lake's: all are replaced.
            locations = {name: session.lake_table(f"{layer}.{name}").location() for name in present}
            tables = {name for name, location in locations.items() if location is not None}
            for name in (listed if other_lake else listed - tables):
                spark.sql(f"DROP TABLE IF EXISTS `{layer}`.`{name}`")
                _REGISTERED.pop((id(spark), f"{layer}.{name}"), None)
            for name in tables:
                location = locations[name]
                if other_lake or name not in listed or _REGISTERED.get((id(spark), f"{layer}.{name}")) != location:
                    session.register(f"{layer}.{name}", location)
        _SYNCED[id(spark)] = session.lake

    def run_sql(self, session: SparkWarehouseSession, script: str, name: str, own_transaction: bool = True,
                engine_dialect: bool = False) -> None:
        """Run a script statement by statement (Spark's own dialect as it is, else the shared one compiled); a
        failing statement is named with its file, number and the engine."""
        path, text = name, script
        if engine_dialect:  # written in Spark's dialect
            statements = [Statement(sql, number, shorten(sql)) for number, sql in enumerate(_statements(text), 1)]
        else:
            statements = compile_script(text, self.engine, path)
        session.run_statements(statements, path)
