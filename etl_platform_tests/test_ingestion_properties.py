"""Exactly once, by property (hypothesis): random sequences of source changes through every kind of source the
suite can run, and after every step bronze equals the truth (issue 20).

Each step changes the source — inserts, updates, records that are identical, the same record delivered twice,
a file emptied, quarantined whole or deleted, a key on two pages — then lands it, sometimes with a crash
between the bronze commit and the acknowledgement (the queue's ``acknowledge`` raises: what a process killed
there leaves). The truth is computed beside, in Python:

- ``merge`` (relational cursor + key, REST key): the source's rows, one per key, the latest version;
- ``append`` without identity (relational cursor, no key): every row the source holds, identical rows too;
- ``append`` with identity (RabbitMQ, SQS): the deliveries deduplicated by message id;
- ``replace_by_file`` (files): the good rows of the files that exist now;
- ``replace_by_file`` (the reference pipeline's landing, same commit): the records of the files there now, each
  once, through commits killed before they end;
- ``append`` with identity (Kafka): every record produced, once, through runs killed before the offset commit.

YAML jobs write to a destination, not bronze; the same sequences drive them and the target is compared with the
truth: a files job's target (overwrite: the good rows of the files there now; upsert: every row once, latest
version) and a queue job's (one row per message id), through runs killed after the target's commit.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import duckdb
import psycopg
import pymysql
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from etl_platform.sources import FileSource, KafkaSource, MySQLSource, PostgresSource, RabbitMQSource, \
    RestApiSource, SQLiteSource, SQSSource, ingest
from etl_platform_tests.servers import http_server, kafka_broker, moto_s3, require_service

PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
KEYS = st.integers(min_value=1, max_value=6)
VALUES = st.sampled_from(["a", "b", "é", "x|y", ""])


class Crash(RuntimeError):
    pass


def _land(warehouse, source, name: str, crash: bool = False) -> None:
    """Land ``source``; with ``crash`` the process "dies" right after the bronze commit (acknowledge raises)."""
    if not crash:
        ingest(warehouse, source, name)
        return
    extraction_class = type(source.extract())  # built, not started: no connection yet
    acknowledge = extraction_class.acknowledge

    def killed(self):
        raise Crash("killed between the bronze commit and the acknowledgement")

    extraction_class.acknowledge = killed
    try:
        with pytest.raises(Crash):
            ingest(warehouse, source, name)
    finally:
        extraction_class.acknowledge = acknowledge


# ----------------------------------------------------------------------------- relational: merge and append

@contextmanager
def _relational(engine: str):
    """``(execute, source settings)`` for a fresh table of ``engine``, dropped afterwards."""
    name = f"prop_{uuid.uuid4().hex[:8]}"
    if engine == "sqlite":
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "db.sqlite")
            conn = sqlite3.connect(path, isolation_level=None)
            yield (lambda sql, params=(): conn.execute(sql.replace("%s", "?"), params)), \
                (SQLiteSource, {"path": path, "table": name}), name
            conn.close()
    elif engine == "postgres":
        require_service("PostgreSQL", 5432)
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
            try:
                yield (lambda sql, params=(): conn.execute(sql, params)), \
                    (PostgresSource, {"database": "test", "table": name}), name
            finally:
                conn.execute(f"DROP TABLE IF EXISTS {name}")
    else:
        require_service("MariaDB", 3306)
        conn = pymysql.connect(host="127.0.0.1", user="root", database="test", autocommit=True)
        try:
            yield (lambda sql, params=(): _executed(conn.cursor(), sql, params)), \
                (MySQLSource, {"host": "127.0.0.1", "username": "root", "database": "test", "table": name}), name
        finally:
            conn.cursor().execute(f"DROP TABLE IF EXISTS {name}")
            conn.close()


def _executed(cursor, sql: str, params):
    cursor.execute(sql, params)
    return cursor


ROW_CHANGES = st.lists(st.lists(st.tuples(KEYS, VALUES), min_size=0, max_size=5), min_size=1, max_size=5)


@pytest.mark.parametrize("engine", ["sqlite", "postgres", "mariadb"])
@PROPERTY
@given(steps=ROW_CHANGES, lookback=st.sampled_from([0, 2]), batch_size=st.sampled_from([1, 3, 1000]))
def test_merge_by_key_equals_the_source_rows(engine, steps, lookback, batch_size):
    """Inserts and updates (a key written twice in one step too), read by a cursor with a lookback: bronze holds
    each key once, with its latest value."""
    with _relational(engine) as (execute, (kind, settings_), table):
        execute(f"CREATE TABLE {table} (id INTEGER, v VARCHAR(10), seq INTEGER)")
        source = kind(**settings_, cursor_column="seq", primary_key=["id"], lookback=lookback,
                      batch_size=batch_size)
        warehouse, truth, seq = duckdb.connect(), {}, 0
        for changes in steps:
            for key, value in changes:
                seq += 1
                execute(f"DELETE FROM {table} WHERE id = %s", (key,))
                execute(f"INSERT INTO {table} VALUES (%s, %s, %s)", (key, value, seq))
                truth[key] = value
            _land(warehouse, source, "merged")
            if truth:
                assert dict(warehouse.execute("SELECT id, v FROM bronze.merged").fetchall()) == truth
                assert warehouse.execute("SELECT count(*) FROM bronze.merged").fetchone()[0] == len(truth)


@pytest.mark.parametrize("engine", ["sqlite", "postgres", "mariadb"])
@PROPERTY
@given(steps=ROW_CHANGES, batch_size=st.sampled_from([1, 2, 1000]))
def test_append_without_a_key_keeps_identical_rows_and_never_doubles_a_re_read(engine, steps, batch_size):
    """Rows appended with a cursor that often repeats (the `>=` window reads the mark's rows again), identical
    rows among them: bronze holds the source's rows, as a multiset."""
    with _relational(engine) as (execute, (kind, settings_), table):
        execute(f"CREATE TABLE {table} (seq INTEGER, v VARCHAR(10))")
        source = kind(**settings_, cursor_column="seq", batch_size=batch_size)
        warehouse, seq = duckdb.connect(), 0
        for changes in steps:
            for step, value in changes:
                seq += step % 2  # the cursor stays (identical rows, rows at the mark) or grows by one
                execute(f"INSERT INTO {table} VALUES (%s, %s)", (seq, value))
            _land(warehouse, source, "appended")
            expected = Counter(map(tuple, execute(f"SELECT seq, v FROM {table}").fetchall()))
            if expected:
                assert Counter(warehouse.execute("SELECT seq, v FROM bronze.appended").fetchall()) == expected


# ----------------------------------------------------------------------------- files: replace_by_file

FILE_CHANGES = st.lists(st.tuples(st.sampled_from(["a.csv", "b.csv", "c.jsonl"]),
                                  st.sampled_from(["rows", "empty", "all_bad", "delete", "some_bad", "not_utf8"]),
                                  st.lists(VALUES.filter(bool), min_size=1, max_size=3)),
                        min_size=1, max_size=6)


@PROPERTY
@given(steps=FILE_CHANGES)
def test_files_land_by_file_and_bronze_equals_the_good_rows_of_the_files_there_now(tmp_path_factory, steps):
    folder = tmp_path_factory.mktemp("files")
    warehouse, source = duckdb.connect(), FileSource(url=str(folder))
    truth: dict[str, list[str]] = {}
    for number, (name, change, values) in enumerate(steps):
        path = folder / name
        # a csv with a byte that is not UTF-8 cannot be read at all (quarantined whole); a jsonl loses that line
        good = [] if change in ("empty", "all_bad") or (change == "not_utf8" and name.endswith(".csv")) else values
        if change == "delete":
            path.unlink(missing_ok=True)
            truth.pop(name, None)
        else:
            bad = values if change in ("all_bad", "some_bad") else []
            if name.endswith(".csv"):
                lines = ["id,v"] + [f"{i},{v}" for i, v in enumerate(values if change == "not_utf8" else good)] \
                    + [f"{v},too,many" for v in bad]
            else:
                lines = [json.dumps({"v": v}) for v in good] + ["{not json" for _ in bad]
            latin = ['9,caf\xe9' if name.endswith(".csv") else '{"v": "caf\xe9"}'] if change == "not_utf8" else []
            path.write_bytes(("\n".join(lines) + "\n").encode("utf-8") + "".join(f"{line}\n" for line in latin)
                             .encode("latin-1"))
            os.utime(path, ns=(number * 10**9, number * 10**9))  # a new version, even within one clock tick
            truth[name] = good
        ingest(warehouse, source, "by_file")
        expected = Counter((name, v) for name, values_ in truth.items() for v in values_)
        columns = {c for (c,) in warehouse.execute("SELECT column_name FROM information_schema.columns WHERE "
                                                   "table_name = 'by_file'").fetchall()}
        if not columns:  # nothing has ever landed
            assert not expected
            continue
        value = "coalesce(" + ", ".join(["v"] * ("v" in columns) + ["_record->>'$.v'"] * ("_record" in columns)
                                        + ["NULL"]) + ")"
        landed = warehouse.execute(f"SELECT _source_file, {value} FROM bronze.by_file").fetchall()
        assert Counter(landed) == expected
        quarantined = {part for (part,) in warehouse.execute("SELECT DISTINCT part FROM bronze._source_quarantine"
                                                             ).fetchall()}
        assert quarantined <= set(truth)  # a deleted or rewritten file's quarantine goes with it


# ----------------------------------------------------------------------------- the reference landing, by file

LANDING_CHANGES = st.lists(st.tuples(st.sampled_from(["users_a.csv", "users_b.csv", "users_c.csv.gz"]),
                                     st.sampled_from(["rows", "header_only", "delete", "unreadable"]),
                                     st.lists(VALUES.filter(bool), max_size=3), st.booleans()),
                           min_size=1, max_size=6)


def _land_reference(warehouse, folder, crash: bool) -> None:
    """The users landing as its bronze asset does it (files gone, then each new or changed file); with ``crash``
    every commit dies after writing the file's rows and its manifest row, before the transaction ends."""
    from etl_platform.landing import BronzeLoader, discover_files
    from etl_platform.video_analytics import contract

    with warehouse.connect() as conn:
        loader = BronzeLoader(conn, contract.BRONZE["users"], "block")
        if crash:
            commit = loader._commit

            def dying(rows, files, ingested_at, record):
                def record_then_die():
                    record()
                    raise Crash("killed inside the file's commit")
                return commit(rows, files, ingested_at, record_then_die)

            loader._commit = dying
        files = discover_files(folder, "users*.csv")
        loader.forget_missing(files)
        for file in loader.pending(files):
            loader.load(file)


def _reference_bronze(warehouse) -> tuple[Counter, dict]:
    with warehouse.connect() as conn:
        if not conn.table_exists("bronze.users"):
            return Counter(), {}
        rows = conn.execute("SELECT _source_file, _row_number, user_id, _parse_error FROM bronze.users").fetchall()
        manifest = conn.execute("SELECT source_file, status, row_count FROM bronze._ingested_files "
                                "WHERE entity = 'users'").fetchall()
    return Counter(map(tuple, rows)), {name: (status, count) for name, status, count in manifest}


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
@PROPERTY
@given(steps=LANDING_CHANGES)
def test_the_reference_landing_holds_the_records_of_the_files_there_now(engine, request, tmp_path_factory, steps):
    """The reference pipeline's landing commits through the ingestion engine (replace_by_file, one transaction per
    file with its manifest row): after new, rewritten, header-only, deleted and unreadable files (blocked), and
    commits killed before they end, bronze holds exactly the records of the files there now, each once."""
    import csv
    import gzip
    import io

    from etl_platform.video_analytics import contract
    from etl_platform.warehouse import DuckDBWarehouse
    from etl_platform.warehouse.postgres_warehouse import PostgresWarehouse

    folder = tmp_path_factory.mktemp("landing")
    if engine == "duckdb":
        warehouse = DuckDBWarehouse(path=str(folder / "w.duckdb"))
    else:
        url = request.getfixturevalue("postgres_url")  # a database of its own, shared by the examples
        warehouse = PostgresWarehouse(url=url)
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("DROP SCHEMA IF EXISTS bronze CASCADE")
    landing = folder / "users"
    landing.mkdir()
    rows_truth: Counter = Counter()
    manifest_truth: dict = {}
    for number, (name, change, values, crash) in enumerate(steps):
        path = landing / name
        if change == "delete":
            path.unlink(missing_ok=True)
        else:
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(contract.USERS_COLUMNS)
            for value in values if change == "rows" else []:
                writer.writerow([value, "e@x", "n", "US", "free", "2024-01-01", "1990", ""])
            data = text.getvalue().encode()
            if change == "unreadable":  # UTF-16 for a plain file; a gzip cut short
                data = gzip.compress(data)[:-12] if name.endswith(".gz") else text.getvalue().encode("utf-16")
            elif name.endswith(".gz"):
                data = gzip.compress(data)
            path.write_bytes(data)
            os.utime(path, ns=(number * 10**9, number * 10**9))  # a new version, even within one clock tick
        before = _reference_bronze(warehouse)
        if crash:
            try:
                _land_reference(warehouse, landing, crash=True)
            except Crash:
                pass
            assert _reference_bronze(warehouse) == before  # a killed commit changed nothing
        _land_reference(warehouse, landing, crash=False)

        rows_truth = Counter({k: n for k, n in rows_truth.items() if k[0] != name})
        manifest_truth.pop(name, None)
        if change != "delete":
            good = values if change == "rows" else []
            rows_truth.update((name, row, value, None) for row, value in enumerate(good, start=1))
            manifest_truth[name] = ("blocked", 0) if change == "unreadable" else ("loaded", len(good))
        assert _reference_bronze(warehouse) == (rows_truth, manifest_truth)


# ----------------------------------------------------------------------------- REST: merge by key across pages

class _MovingApi(BaseHTTPRequestHandler):
    records: dict = {}
    echo_on_next_page: bool = False

    def log_message(self, *args):
        pass

    def do_GET(self):
        query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 2))
        rows = [{"id": k, "v": v} for k, v in sorted(_MovingApi.records.items())]
        if _MovingApi.echo_on_next_page and offset >= limit:  # data moved by one: a record comes again
            offset -= 1
        page = rows[offset:offset + limit]
        body = json.dumps(page).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@PROPERTY
@given(steps=st.lists(st.tuples(st.lists(st.tuples(KEYS, VALUES), max_size=4), st.booleans()), min_size=1,
                      max_size=5))
def test_rest_merge_by_key_equals_the_api_records_whatever_the_paging(steps):
    _MovingApi.records = {}
    with http_server(_MovingApi) as url:
        source = RestApiSource(base_url=url, paginator="offset", page_size=2, primary_key=["id"])
        warehouse = duckdb.connect()
        for changes, moving in steps:
            for key, value in changes:
                _MovingApi.records[key] = value
            _MovingApi.echo_on_next_page = moving
            ingest(warehouse, source, "api")
            if _MovingApi.records:
                landed = warehouse.execute("SELECT _record->>'$.id', _record->>'$.v' FROM bronze.api").fetchall()
                assert sorted((int(k), v) for k, v in landed) == sorted(_MovingApi.records.items())


# ----------------------------------------------------------------------------- queues: append by identity

DELIVERIES = st.lists(st.tuples(st.lists(st.tuples(st.integers(1, 8), st.booleans()), max_size=5), st.booleans()),
                      min_size=1, max_size=4)


@pytest.fixture(scope="module")
def rabbit():
    require_service("RabbitMQ", 5672)
    import pika

    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", credentials=pika.PlainCredentials(
        "guest", "guest")))
    yield connection.channel()
    connection.close()


@PROPERTY
@given(steps=DELIVERIES)
def test_rabbitmq_bronze_holds_each_message_id_once_through_duplicates_and_crashes(rabbit, steps):
    """Messages published with ids that repeat (a publisher retrying), some poison; some runs die between the
    bronze commit and the acknowledgement. Bronze: one row per good id; the quarantine: one row per poison id."""
    import pika

    queue = f"etl_prop_{uuid.uuid4().hex[:8]}"
    rabbit.queue_declare(queue)
    try:
        source = RabbitMQSource(queue=queue, password="guest", wait_seconds=0.2, batch_size=3)
        warehouse, good, poison = duckdb.connect(), set(), set()
        for messages, crash in steps:
            for number, bad in messages:
                identity = f"m{number}{'-poison' if bad else ''}"
                rabbit.basic_publish("", queue, b"{broken" if bad else json.dumps({"n": number}).encode(),
                                     pika.BasicProperties(message_id=identity))
                (poison if bad else good).add(identity)
            _land(warehouse, source, "events", crash)
            _assert_once(warehouse, good, poison)
        _land(warehouse, source, "events")  # what a crash left unacknowledged comes back, recognised
        _assert_once(warehouse, good, poison)
        assert rabbit.queue_declare(queue, passive=True).method.message_count == 0
    finally:
        rabbit.queue_delete(queue)


def _assert_once(warehouse, good: set, poison: set) -> None:
    if good:
        landed = [r[0] for r in warehouse.execute("SELECT _message_id FROM bronze.events").fetchall()]
        assert sorted(landed) == sorted(good)
    if poison:
        stored = warehouse.execute("SELECT count(*) FROM bronze._source_quarantine").fetchone()[0]
        assert stored == len(poison)


@pytest.fixture(scope="module")
def sqs_queue_factory():
    import boto3

    with moto_s3() as endpoint:
        client = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k",
                              aws_secret_access_key="s")
        settings_ = {"endpoint_url": endpoint, "region": "us-east-1", "aws_access_key_id": "k",
                     "aws_secret_access_key": "s"}
        yield client, settings_


@PROPERTY
@given(steps=st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=4),
       visibility=st.sampled_from([0, 1, 900]))
def test_sqs_bronze_holds_each_message_once_whatever_the_visibility_timeout(sqs_queue_factory, steps, visibility):
    """Messages sent, some runs crashing after the commit; a visibility timeout shorter than a read (0 s) hands
    messages out again during the read (such a read may stop early: the rest wait for the next run). After every
    run bronze holds sent messages, each once; once the queue is drained, every one of them."""
    import time

    client, settings_ = sqs_queue_factory
    url = client.create_queue(QueueName=f"prop-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    source = SQSSource(queue_url=url, wait_seconds=0, visibility_timeout_seconds=visibility, max_messages=50,
                       **settings_)
    warehouse, sent = duckdb.connect(), set()
    for count, crash in steps:
        for _ in range(count):
            sent.add(client.send_message(QueueUrl=url, MessageBody=json.dumps({"n": len(sent)}))["MessageId"])
        _land(warehouse, source, "orders", crash and visibility <= 1)
        if sent:
            landed = [r[0] for r in warehouse.execute("SELECT _message_id FROM bronze.orders").fetchall()]
            assert len(landed) == len(set(landed)) and set(landed) <= sent
        if visibility == 1:
            time.sleep(1.1)  # crashed runs' messages become visible again
    for _ in range(5):  # drain
        if not sent or ingest(warehouse, source, "orders").rows_read == 0:
            break
    if sent:
        landed = [r[0] for r in warehouse.execute("SELECT _message_id FROM bronze.orders").fetchall()]
        assert sorted(landed) == sorted(sent)
    client.delete_queue(QueueUrl=url)


@pytest.fixture(scope="module")
def kafka():
    with kafka_broker() as bootstrap:
        yield bootstrap


@PROPERTY
@given(steps=st.lists(st.tuples(st.lists(st.integers(0, 1), max_size=4), st.booleans()), min_size=1, max_size=3))
def test_kafka_bronze_holds_every_record_once_through_crashes(kafka, steps):
    """Records produced to two partitions; some runs die between the bronze commit and the offset commit, so the
    next run reads their records again. Bronze holds each topic:partition:offset once."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"prop_{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": kafka})
    source = KafkaSource(bootstrap_servers=kafka, topics=[topic], group_id=f"g_{topic}", wait_seconds=0.5)
    warehouse, produced = duckdb.connect(), set()

    def delivered(error, message):
        assert error is None
        produced.add(f"{message.topic()}:{message.partition()}:{message.offset()}")

    for partitions, crash in steps:
        for partition in partitions:
            producer.produce(topic, json.dumps({"p": partition}).encode(), partition=partition, callback=delivered)
            producer.flush(30)
        _land(warehouse, source, "stream", crash)
        if produced:
            landed = [r[0] for r in warehouse.execute("SELECT _message_id FROM bronze.stream").fetchall()]
            assert sorted(landed) == sorted(produced)


# ----------------------------------------------------------------------------- YAML jobs: the target is the truth

JOB_FILE_CHANGES = st.lists(st.tuples(st.sampled_from(["a.csv", "b.csv"]),
                                      st.sampled_from(["rows", "rows", "empty", "delete", "some_bad", "not_utf8"]),
                                      st.lists(VALUES.filter(bool), min_size=1, max_size=3), st.booleans()),
                            min_size=1, max_size=6)


@contextmanager
def _killed_after_the_target_commit(crash: bool):
    """With ``crash``: the job's run "dies" right after its target committed, before its state is saved (and
    before a queue's acknowledgement): saving the state raises."""
    from etl_platform.jobs.state import WarehouseJobStates

    if not crash:
        yield
        return
    save = WarehouseJobStates.save

    def killed(self, *args, **kwargs):
        raise Crash("killed between the target's commit and the state save")

    WarehouseJobStates.save = killed
    try:
        with pytest.raises(Crash):
            yield
    finally:
        WarehouseJobStates.save = save


@PROPERTY
@given(steps=JOB_FILE_CHANGES, mode=st.sampled_from(["overwrite", "upsert"]))
@example(steps=[("a.csv", "rows", ["a"], False), ("a.csv", "delete", ["a"], False)], mode="overwrite")
def test_a_files_job_target_equals_the_good_rows_of_the_files_there_now(tmp_path_factory, monkeypatch,
                                                                        steps, mode):
    """A YAML job from a files source (new, changed, emptied and deleted files, bad rows) to a parquet target, some
    runs killed after the target's commit. ``overwrite`` (the default): the target is the good rows of the files
    there now. ``upsert`` by (file, row id): every good row of the files there now, latest version, and the rows of
    files that left stay (an upsert never deletes)."""
    from etl_platform.jobs import load_job, run_job

    root = tmp_path_factory.mktemp("job")
    folder, out = root / "in", root / "out"
    folder.mkdir()
    monkeypatch.setenv("ETL_PLATFORM_HOME", str(root / "home"))
    job = root / "mirror.yaml"
    keys = ", id_columns: [_source_file, id]" if mode == "upsert" else ""
    job.write_text(f"tenant_id: t\nsource_connector: files\ntarget_connector: local\nasset: {{name: mirror}}\n"
                   f"source: {{connection: {{url: '{folder}', glob: '*.csv'}}}}\n"
                   f"target: {{connection: {{base_path: '{out}'}}, format: parquet, mode: {mode}{keys}}}\n")
    files: dict[str, list[str]] = {}  # the good values of each file there now
    kept: dict[tuple[str, str], str] = {}  # upsert: (file, id) -> value, never deleted
    for number, (name, change, values, crash) in enumerate(steps):
        path = folder / name
        if change == "delete":
            path.unlink(missing_ok=True)
            files.pop(name, None)
        else:
            good = [] if change in ("empty", "not_utf8") else values  # a csv not UTF-8 is quarantined whole
            bad = values if change == "some_bad" else []
            text = "\n".join(["id,v", *(f"{i},{v}" for i, v in enumerate(values if change == "not_utf8" else good)),
                              *(f"{v},too,many" for v in bad)]) + "\n"
            path.write_bytes(text.encode("utf-8") + (b"9,caf\xe9\n" if change == "not_utf8" else b""))
            os.utime(path, ns=(number * 10**9, number * 10**9))
            files[name] = good
            kept.update({(name, str(i)): v for i, v in enumerate(good)})
        with _killed_after_the_target_commit(crash):
            run_job(load_job(job), log=lambda message: None)
        written = duckdb.sql(f"SELECT _source_file, id, v FROM '{out}/mirror/*.parquet'").fetchall() \
            if list((out / "mirror").glob("*.parquet")) else []
        if mode == "overwrite":
            assert Counter((f, v) for f, _, v in written) == Counter((f, v) for f, vs in files.items() for v in vs)
        else:
            assert sorted(written) == sorted((f, i, v) for (f, i), v in kept.items())


@PROPERTY
@given(steps=DELIVERIES)
def test_a_queue_job_target_holds_each_message_id_once_through_duplicates_and_crashes(rabbit, tmp_path_factory,
                                                                                    monkeypatch, steps):
    """A YAML job from RabbitMQ to a parquet target (its default mode: upsert by ``_message_id``): message ids that
    repeat (a publisher retrying), poison messages, runs that die between the target's commit and the
    acknowledgement. The target: one row per good id, whatever the sequence."""
    import pika

    from etl_platform.connectors.rabbitmq.reader import RabbitMQExtraction
    from etl_platform.jobs import load_job, run_job

    root = tmp_path_factory.mktemp("queue_job")
    monkeypatch.setenv("ETL_PLATFORM_HOME", str(root / "home"))
    queue = f"etl_prop_{uuid.uuid4().hex[:8]}"
    rabbit.queue_declare(queue)
    job = root / "events.yaml"
    job.write_text(f"tenant_id: t\nsource_connector: rabbitmq\ntarget_connector: local\nasset: {{name: events}}\n"
                   f"source: {{connection: {{queue: {queue}, password: guest, wait_seconds: 0.2, batch_size: 3}}}}\n"
                   f"target: {{connection: {{base_path: '{root / 'out'}'}}, format: parquet}}\n")
    acknowledge = RabbitMQExtraction.acknowledge

    def killed(self):
        raise Crash("killed between the target's commit and the acknowledgement")

    try:
        good = set()
        for messages, crash in [*steps, ([], False)]:  # a last run takes what a crash left unacknowledged
            for number, bad in messages:
                identity = f"m{number}{'-poison' if bad else ''}"
                rabbit.basic_publish("", queue, b"{broken" if bad else json.dumps({"n": number}).encode(),
                                     pika.BasicProperties(message_id=identity))
                good |= set() if bad else {identity}
            RabbitMQExtraction.acknowledge = killed if crash else acknowledge
            try:
                run_job(load_job(job), log=lambda message: None)
            except Crash:
                assert crash
            finally:
                RabbitMQExtraction.acknowledge = acknowledge
            files = list((root / "out" / "events").glob("*.parquet"))
            written = [i for (i,) in duckdb.sql(f"SELECT _message_id FROM '{root}/out/events/*.parquet'"
                                                ).fetchall()] if files else []
            assert sorted(written) == sorted(good)
        assert rabbit.queue_declare(queue, passive=True).method.message_count == 0
    finally:
        rabbit.queue_delete(queue)
