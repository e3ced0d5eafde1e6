"""Issue 22: every change of a Spark lake table is one atomic step, whatever moment its writer dies.

A writer is "killed" after its k-th change of the lake (each folder made, file written, renamed or deleted goes
through ``LakeFiles``): that change and every later one raise, so not even its clean-up runs, as after a SIGKILL.
Then a new process is simulated (the catalog forgotten and rebuilt from the lake alone) and reads the table: it
must hold the rows from before the change or the rows after it, never a mix, never nothing. The kill is simulated
in-process because a Spark session takes ~10 s to start: a subprocess per kill point would take minutes.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from etl_platform.warehouse import SqlScriptError, spark_warehouse
from etl_platform.warehouse.lake import COMMITS, ConcurrentWriteError, LakeFiles
from etl_platform.warehouse.spark_warehouse import SparkWarehouse

TABLE = "bronze.lake_rows"
MUTATIONS = ("mkdirs", "rename", "delete", "create_empty", "write_parquet", "write_bytes")


class Killed(BaseException):
    """The writer is dead: no later line of it runs (not even an ``except`` clean-up that touches the lake)."""


@contextlib.contextmanager
def killed_after(changes: int | None, monkeypatch):
    """The writer dies at its ``changes``-th change of the lake (None: it lives). Yields a list that says whether
    it died."""
    state = {"count": 0, "dead": False}
    died = []
    originals = {name: getattr(LakeFiles, name) for name in MUTATIONS}

    def wrap(name):
        def mutation(self, *args, **kwargs):
            state["count"] += 1
            if state["dead"] or (changes is not None and state["count"] >= changes):
                state["dead"] = True
                raise Killed(name)
            return originals[name](self, *args, **kwargs)
        return mutation

    with monkeypatch.context() as patch:
        for name in MUTATIONS:
            patch.setattr(LakeFiles, name, wrap(name))
        try:
            yield died
        except Killed:
            died.append(True)


def new_process(spark_session_) -> None:
    """What a new process knows of the lake: nothing but its folders (the in-memory catalog is gone)."""
    for layer in ("bronze", "silver", "gold", "mini"):  # mini: a declared medallion's own schema
        if spark_session_.catalog.databaseExists(layer):
            for row in spark_session_.sql(f"SHOW TABLES IN `{layer}`").collect():
                if not row.isTemporary:
                    spark_session_.sql(f"DROP TABLE IF EXISTS `{layer}`.`{row.tableName}`")
    spark_warehouse._SYNCED.pop(id(spark_session_), None)
    for key in [k for k in spark_warehouse._REGISTERED if k[0] == id(spark_session_)]:
        spark_warehouse._REGISTERED.pop(key)


def rows_of(warehouse) -> Counter:
    with warehouse.connect() as session:
        if not session.table_exists(TABLE):
            return Counter()
        return Counter(session.execute(f"SELECT id, name FROM {TABLE}").fetchall())


def _values(rows) -> str:
    return ", ".join(f"({i}, '{n}')" for i, n in rows)


def replace(session, rows):
    select = (f"SELECT * FROM (VALUES {_values(rows)}) AS v(id, name)" if rows else
              "SELECT CAST(NULL AS BIGINT) AS id, CAST(NULL AS VARCHAR) AS name WHERE false")
    session.execute(f"CREATE OR REPLACE TABLE {TABLE} AS {select}")


def insert(session, rows):
    session.execute(f"INSERT INTO {TABLE} VALUES {_values(rows)}")


def append_arrow(session, rows):
    session.append_arrow(TABLE, pa.table({"id": [i for i, _ in rows], "name": [n for _, n in rows]}))


def delete(session, rows):
    session.execute(f"DELETE FROM {TABLE} WHERE id IN ({', '.join(str(i) for i, _ in rows)})")


OPERATIONS = {"replace": replace, "insert": insert, "append_arrow": append_arrow, "delete": delete}


def expected_after(operation: str, before: Counter, rows) -> Counter:
    if operation == "replace":
        return Counter(rows)
    if operation == "delete":
        gone = {i for i, _ in rows}
        return Counter({row: n for row, n in before.items() if row[0] not in gone})
    return before + Counter(rows)


def change_then_read(spark_session, warehouse, operation: str, rows, kill_at: int | None, before: Counter,
                     monkeypatch):
    """``operation`` with ``rows``, its writer killed at its ``kill_at``-th change of the lake; then what a new
    process reads. ``(rows seen, rows expected had it finished, whether it was killed)``."""
    after = expected_after(operation, before, rows)
    with killed_after(kill_at, monkeypatch) as died:
        with warehouse.connect() as session:
            OPERATIONS[operation](session, rows)
    new_process(spark_session)
    return rows_of(warehouse), after, bool(died)


def start(spark_session, tmp_path, rows=((1, "a"), (2, "b"))) -> SparkWarehouse:
    warehouse = SparkWarehouse(lake_path=str(tmp_path / "lake"))
    with warehouse.connect() as session:
        session.execute("CREATE SCHEMA IF NOT EXISTS bronze")
        replace(session, list(rows))
    return warehouse


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_writer_killed_after_any_change_of_the_lake_leaves_the_old_table_or_the_new(
        operation, spark_session, tmp_path, monkeypatch):
    changes_rows = [(1, "a"), (3, "c")]
    outcomes = []
    for kill_at in range(1, 30):
        warehouse = start(spark_session, tmp_path / str(kill_at))
        before = rows_of(warehouse)
        seen, after, died = change_then_read(spark_session, warehouse, operation, changes_rows, kill_at, before,
                                             monkeypatch)
        assert seen in (before, after), f"killed at change {kill_at} of {operation}: {sorted(seen.elements())}"
        outcomes.append("new" if seen == after else "old")
        if not died:  # the operation finished: every kill point was tried
            assert seen == after
            break
    else:
        pytest.fail(f"{operation} made more than 29 changes")
    # The kill points covered both sides of the commit.
    assert outcomes[0] == "old" and outcomes[-1] == "new", outcomes


def test_a_table_keeps_two_versions_and_removes_what_killed_writers_left(spark_session, tmp_path, monkeypatch):
    warehouse = start(spark_session, tmp_path)
    folder = tmp_path / "lake" / "bronze" / "lake_rows"
    for kill_at in (2, 1):  # a version folder written but never committed; an append staged but never moved
        with killed_after(kill_at, monkeypatch):
            with warehouse.connect() as session:
                (replace if kill_at == 2 else insert)(session, [(9, "z")])
    new_process(spark_session)
    with warehouse.connect() as session:
        for number in range(3):
            replace(session, [(number, "x")])
    versions = sorted(p.name for p in folder.iterdir() if p.name.startswith("_v"))
    commits = sorted(p.name for p in (folder / COMMITS).iterdir() if not p.name.startswith("."))
    assert len(versions) == 2 and len(commits) == 2
    assert {c.split(".")[0] for c in commits} == {v[2:].split("-")[0] for v in versions}
    assert rows_of(warehouse) == Counter([(2, "x")])


@pytest.mark.parametrize("layout", ["new", "earlier"])
def test_a_first_write_killed_at_any_change_leaves_no_table_or_the_whole_one(layout, spark_session, tmp_path,
                                                                              monkeypatch):
    """A table's first versioned write: of a new table (killed before its commit there is no table at all), and
    of a table of the earlier layout (killed, it keeps its old rows: the uncommitted version is hidden from the
    earlier layout's recursive listing too)."""
    for kill_at in range(1, 30):
        lake = tmp_path / str(kill_at) / "lake"
        warehouse = SparkWarehouse(lake_path=str(lake))
        if layout == "earlier":
            spark_session.createDataFrame([(1, "a")], "id BIGINT, name STRING").write.parquet(
                str(lake / "bronze" / "lake_rows"))
        new_process(spark_session)
        before = rows_of(warehouse)
        with killed_after(kill_at, monkeypatch) as died:
            with warehouse.connect() as session:
                session.execute("CREATE SCHEMA IF NOT EXISTS bronze")
                replace(session, [(5, "x"), (6, "y")])
        new_process(spark_session)
        seen = rows_of(warehouse)
        assert seen in (before, Counter([(5, "x"), (6, "y")])), (kill_at, sorted(seen.elements()))
        if not died:
            assert seen == Counter([(5, "x"), (6, "y")])
            break
    else:
        pytest.fail("the first write made more than 29 changes")


def test_an_append_during_a_replace_fails_naming_the_table_and_does_not_land(spark_session, tmp_path, monkeypatch):
    warehouse = start(spark_session, tmp_path)
    rename = LakeFiles.rename

    def replace_first(self, source, target):
        monkeypatch.setattr(LakeFiles, "rename", rename)
        with warehouse.connect() as other:  # another writer commits a replace just before the append moves in
            replace(other, [(7, "r")])
        return rename(self, source, target)

    monkeypatch.setattr(LakeFiles, "rename", replace_first)
    with warehouse.connect() as session:
        with pytest.raises(ConcurrentWriteError, match=r"bronze\.lake_rows was replaced .* did not land"):
            insert(session, [(5, "i")])
    new_process(spark_session)
    assert rows_of(warehouse) == Counter([(7, "r")])


def test_two_writers_committing_the_same_version_do_not_lose_a_write_unseen(spark_session, tmp_path, monkeypatch):
    warehouse = start(spark_session, tmp_path)
    create_empty = LakeFiles.create_empty

    def rival_first(self, path):
        monkeypatch.setattr(LakeFiles, "create_empty", create_empty)
        with warehouse.connect() as other:  # the rival read the same version, and commits the next one first
            replace(other, [(8, "rival")])
        return create_empty(self, path)

    monkeypatch.setattr(LakeFiles, "create_empty", rival_first)
    with warehouse.connect() as session:
        with pytest.raises(ConcurrentWriteError, match=r"bronze\.lake_rows: another writer committed version 2"):
            replace(session, [(9, "mine")])
    new_process(spark_session)
    assert rows_of(warehouse) == Counter([(8, "rival")])


def test_a_table_of_the_earlier_layout_is_read_and_becomes_versioned_at_its_first_change(spark_session, tmp_path):
    folder = tmp_path / "lake" / "bronze" / "lake_rows"
    spark_session.createDataFrame([(1, "a")], "id BIGINT, name STRING").write.parquet(str(folder))
    warehouse = SparkWarehouse(lake_path=str(tmp_path / "lake"))
    new_process(spark_session)
    assert rows_of(warehouse) == Counter([(1, "a")])
    with warehouse.connect() as session:
        insert(session, [(2, "b")])
    new_process(spark_session)
    assert rows_of(warehouse) == Counter([(1, "a"), (2, "b")])
    assert not list(folder.glob("*.parquet")) and len(list((folder / COMMITS).iterdir())) >= 1


ROWS = st.lists(st.tuples(st.integers(0, 5), st.sampled_from("abc")), min_size=1, max_size=4)
STEP = st.tuples(st.sampled_from(sorted(OPERATIONS)), ROWS, st.one_of(st.none(), st.integers(1, 6)))


@hypothesis_settings(max_examples=int(os.environ.get("ETL_LAKE_EXAMPLES", "6")), deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=1, max_size=5))
def test_random_changes_and_kills_leave_every_table_whole(steps, spark_session, tmp_path_factory, monkeypatch):
    """Random replaces, inserts, Arrow appends and deletes, each possibly killed at one of its first changes of the
    lake: after each, a new process reads the rows from before it or after it, and the truth follows what it read."""
    warehouse = start(spark_session, tmp_path_factory.mktemp("lake"), rows=[(0, "a")])
    truth = Counter([(0, "a")])
    for operation, rows, kill_at in steps:
        seen, after, died = change_then_read(spark_session, warehouse, operation, rows, kill_at, truth, monkeypatch)
        assert seen in (truth, after), (operation, rows, kill_at, sorted(seen.elements()))
        if not died:
            assert seen == after, (operation, rows)
        truth = seen


def test_a_table_of_a_schema_of_its_own_is_found_again_by_a_new_process(spark_session, tmp_path):
    """A declared medallion may keep its tables in a schema of its own (docs/dg.md): a new process finds them in
    the lake as it finds bronze, silver and gold (it found none before: each run of such a table was a full one)."""
    warehouse = SparkWarehouse(lake_path=str(tmp_path / "lake"))
    with warehouse.connect() as session:
        session.execute("CREATE SCHEMA IF NOT EXISTS mini")
        session.execute("CREATE OR REPLACE TABLE mini.countries AS SELECT 'DE' AS country, 2 AS users")
        session.execute("INSERT INTO mini.countries VALUES ('SE', 1)")
    new_process(spark_session)
    assert not spark_session.catalog.tableExists("`mini`.`countries`")
    with warehouse.connect() as session:
        assert session.table_exists("mini.countries")
        assert sorted(session.execute("SELECT country, users FROM mini.countries").fetchall()) == [("DE", 2), ("SE", 1)]
        assert ("mini", "countries") in session.execute(
            "SELECT table_schema, table_name FROM information_schema.tables").fetchall()


def test_delete_removes_the_rows_its_condition_holds_for_as_duckdb_does(spark_session, tmp_path):
    """Spark's DELETE keeps every row its condition is false or NULL for, duplicates included, with subqueries
    correlated to the table's alias or not, and NOT IN over a NULL (which holds for no row): the same rows DuckDB
    keeps, statement after statement."""
    from etl_platform.warehouse.duckdb_warehouse import DuckDBWarehouse

    setup = [
        "CREATE SCHEMA IF NOT EXISTS bronze",
        "CREATE OR REPLACE TABLE bronze.delete_rows AS SELECT * FROM (VALUES (1, 'a'), (1, 'a'), (2, NULL), "
        "(NULL, 'c'), (3, 'c'), (4, 'd'), (5, 'e'), (6, 'f')) AS v(id, name)",
        "CREATE OR REPLACE TABLE bronze.delete_keys AS SELECT * FROM (VALUES (3, 'x'), (NULL, 'y'), (6, 'f')) "
        "AS v(id, name)",
    ]
    deletes = [
        "DELETE FROM bronze.delete_rows WHERE id > 4",  # NULL id: the condition is NULL, the row stays
        "DELETE FROM bronze.delete_rows AS r WHERE EXISTS (SELECT 1 FROM bronze.delete_keys AS k WHERE k.id = r.id)",
        "DELETE FROM bronze.delete_rows WHERE id NOT IN (SELECT id FROM bronze.delete_keys)",  # NULL in it: none
        "DELETE FROM bronze.delete_rows WHERE name IN (SELECT name FROM bronze.delete_keys) OR name = 'd'",
        "DELETE FROM bronze.delete_rows WHERE id = 7",  # nothing matches: the table is not rewritten
    ]
    engines = {"spark": SparkWarehouse(lake_path=str(tmp_path / "lake")),
               "duckdb": DuckDBWarehouse(path=str(tmp_path / "duck.duckdb"))}
    seen = {}
    for engine, warehouse in engines.items():
        with warehouse.connect() as session:
            for statement in setup:
                session.execute(statement)
            seen[engine] = []
            for statement in deletes:
                session.execute(statement)
                seen[engine].append(Counter(session.execute("SELECT id, name FROM bronze.delete_rows").fetchall()))
    assert seen["spark"] == seen["duckdb"]
    assert seen["duckdb"][-1] == Counter({(1, "a"): 2, (2, None): 1, (None, "c"): 1})


def test_a_table_declared_by_its_columns_has_their_types_takes_rows_and_is_found_again(spark_session, tmp_path):
    """`CREATE TABLE t (columns)` writes its empty version with pyarrow instead of a Spark job (~0.3 s each, ~50 in
    a first run): the table has exactly the types a Spark-written one has, takes rows, and a new process, which
    reads the types from the files, finds the same ones."""
    columns = ("a BIGINT, b INTEGER, c SMALLINT, d VARCHAR, e TIMESTAMPTZ, f TIMESTAMP, g DECIMAL(10, 2), h DATE, "
               "i DOUBLE, j BOOLEAN, k BLOB, l VARCHAR[], m STRUCT(x INTEGER, y VARCHAR)")
    warehouse = SparkWarehouse(lake_path=str(tmp_path / "lake"))
    with warehouse.connect() as session:
        session.execute("CREATE SCHEMA IF NOT EXISTS silver")
        session.execute(f"CREATE TABLE IF NOT EXISTS silver.declared ({columns})")
        declared = session.raw.table("silver.declared").schema
        # The same columns as Spark writes them (a CREATE TABLE AS of a query with no rows).
        session.raw.createDataFrame([], declared).createOrReplaceTempView("no_rows")
        session.execute("CREATE TABLE silver.written AS SELECT * FROM no_rows")
        assert session.columns("silver.declared") == session.columns("silver.written")
        assert declared == session.raw.table("silver.written").schema
        assert session.execute("SELECT count(*) FROM silver.declared").fetchone() == (0,)
        # A type Arrow has no match for goes Spark's way, and Spark's refusal is the error (no table left).
        with pytest.raises(SqlScriptError, match='Parquet datasource doesn.t support the column `d` of the type "INTERVAL"'):
            session.execute("CREATE TABLE IF NOT EXISTS silver.intervals (d INTERVAL)")
        assert not session.table_exists("silver.intervals")
        session.execute("INSERT INTO silver.declared (a, d, e, g, l, m) VALUES (1, 'x', TIMESTAMP '2024-01-02 03:04:05', "
                        "1.25, ['p', 'q'], {'x': 2, 'y': 'z'})")
    new_process(spark_session)
    with warehouse.connect() as session:
        assert session.raw.table("silver.declared").schema == declared
        row = session.execute("SELECT a, d, g, l, m.y FROM silver.declared").fetchall()
    assert [(a, d, float(g), list(l), y) for a, d, g, l, y in row] == [(1, "x", 1.25, ["p", "q"], "z")]
