"""YAML jobs (seed 003): validate, run through the CLI, plugins, incremental state, quarantine — against a real
PostgreSQL and a JSON API the test serves."""

from __future__ import annotations

import gzip
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import duckdb
import psycopg
import pytest
from click.testing import CliRunner

from etl_platform.cli import main
from etl_platform.errors import ConfigurationError, QueryError
from etl_platform.jobs import load_job, run_job, validate_job
from etl_platform.jobs.state import WarehouseJobStates, job_states
from etl_platform.warehouse.duckdb_warehouse import DuckDBWarehouse
from etl_platform.plugins import PluginError
from etl_platform_tests import servers

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "jobs"
PG = "host=127.0.0.1 port=5432 dbname=test user=postgres"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_PLATFORM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def cli(*args: str):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


# ---------------------------------------------------------------- PostgreSQL → parquet, incremental


PG_JOB = """
tenant_id: acme
environment: test
source_connector: postgres
target_connector: local
asset:
  name: crm_users
  owner: team:crm
  schema:
    - {name: user_id, type: integer, required: true, unique: true, source: id}
    - {name: email, type: string}
    - {name: signed_up, type: date, source: signup_text, format: "%d/%m/%Y"}
    - {name: updated_at, type: timestamp}
source:
  connection: {host: 127.0.0.1, port: 5432, database: test, username: postgres}
  credentials: {password: "${TEST_PG_PASSWORD}"}
  tables: [{name: etl_job_users}]
  incremental: {cursor_field: updated_at}
  engine: {options: {batch_size: 2}}
target:
  connection: {base_path: "${TEST_OUTPUT}"}
  format: parquet
  mode: upsert
"""


@pytest.fixture
def users_table():
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS etl_job_users")
        conn.execute("CREATE TABLE etl_job_users (id int PRIMARY KEY, email text, signup_text text, "
                     "updated_at timestamptz)")
        conn.execute("INSERT INTO etl_job_users VALUES (1, 'a@x', '01/02/2024', '2024-03-01 10:00+00'), "
                     "(2, 'b@x', '31/02/2024', '2024-03-01 11:00+00'), (3, 'c@x', '05/02/2024', '2024-03-01 12:00+00')")
        yield conn
        conn.execute("DROP TABLE IF EXISTS etl_job_users")


def test_postgres_job_runs_incrementally_through_the_cli(home, tmp_path, monkeypatch, users_table):
    job = tmp_path / "crm_users.yaml"
    job.write_text(PG_JOB)
    monkeypatch.setenv("TEST_PG_PASSWORD", "not-used-trust-auth")
    monkeypatch.setenv("TEST_OUTPUT", str(tmp_path / "out"))

    code, output = cli("run", "--config", str(job))
    assert code == 0, output
    assert "etl_job_users: 3 read, 2 written to file://" in output and "1 quarantined" in output
    assert "not-used-trust-auth" not in output
    parquet = f"{tmp_path}/out/crm_users/*.parquet"
    assert duckdb.sql(f"SELECT user_id, email, signed_up::VARCHAR FROM '{parquet}' ORDER BY 1").fetchall() == [
        (1, "a@x", "2024-02-01"), (3, "c@x", "2024-02-05")]
    quarantined = [json.loads(line) for line in next((home / "quarantine" / "jobs" / "acme" / "crm_users").glob(
        "*.jsonl")).read_text().splitlines()]
    assert quarantined[0]["reasons"] == ["signed_up: value '31/02/2024' is not a date in the format %d/%m/%Y"]
    assert quarantined[0]["value"]["id"] == 2
    saved = job_states().load("acme", "crm_users", "etl_job_users")  # in the warehouse, no state file
    assert "cursor" in saved.state and saved.version == 1 and not (home / "state").exists()

    users_table.execute("UPDATE etl_job_users SET email = 'c2@x', updated_at = '2024-03-02 09:00+00' WHERE id = 3")
    users_table.execute("INSERT INTO etl_job_users VALUES (4, 'd@x', '07/02/2024', '2024-03-02 10:00+00')")
    code, output = cli("run", "--config", str(job))
    assert code == 0, output
    assert "etl_job_users: 2 read" in output  # from the mark (>=): the updated row (it held the mark) and the new one
    assert duckdb.sql(f"SELECT user_id, email FROM '{parquet}' ORDER BY 1").fetchall() == [
        (1, "a@x"), (3, "c2@x"), (4, "d@x")]

    code, output = cli("run", "--config", str(job), "--full-refresh")
    assert code == 0 and "etl_job_users: 4 read, 3 written" in output


def test_a_failed_write_keeps_the_state(home, tmp_path, monkeypatch, users_table):
    """The target refuses the write (a file where the dataset folder should be): the run fails with the reason
    and the state is not saved, so the next run reads the same rows again."""
    job = tmp_path / "crm_users.yaml"
    job.write_text(PG_JOB)
    monkeypatch.setenv("TEST_PG_PASSWORD", "x")
    monkeypatch.setenv("TEST_OUTPUT", str(tmp_path / "out"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "crm_users").write_text("a file, not a folder")
    code, output = cli("run", "--config", str(job))
    assert code == 1 and "FAILED: " in output and "crm_users" in output, output
    assert job_states().load("acme", "crm_users", "etl_job_users").version == 0  # nothing saved


# ---------------------------------------------------------------- plugins: the seed's JSON API reader


class JsonApi(BaseHTTPRequestHandler):
    """A JSON API the tests stand in for: ``page(query)`` answers a GET with a bearer ``token``."""

    token = ""

    def page(self, query: dict) -> dict:
        raise NotImplementedError

    def do_GET(self):  # noqa: N802
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps(self.page(parse_qs(urlsplit(self.path).query))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class EventsApi(JsonApi):
    """Seed 003's paginated API: /data?page=&page_size= → {items, has_next}; needs the bearer token."""

    token = "secret-token"
    events = [{"id": i, "kind": "click" if i % 2 else "view", "meta": {"at": f"2024-06-01T10:{i % 60:02d}:00Z"},
               "amount": i * 1.5} for i in range(1, 251)]

    def page(self, query: dict) -> dict:
        page, size = int(query["page"][0]), int(query["page_size"][0])
        return {"items": self.events[(page - 1) * size: page * size], "has_next": page * size < len(self.events)}


def test_the_first_example_of_the_jobs_doc_runs_as_written(home, tmp_path):
    """Issue 23, trip-up 2: docs/jobs.md's first `etl-platform run` needed an API on 127.0.0.1:8765 that nothing
    started. examples/jobs/demo_api.py is that API; the documented commands run against it (on a free port here)."""
    import os
    import subprocess
    import sys

    port = servers.free_port()
    api = subprocess.Popen([sys.executable, str(EXAMPLES / "demo_api.py"), "--port", str(port)],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert api.stdout.readline().startswith("demo API on")
        env = {**os.environ, "EVENTS_API_URL": f"http://127.0.0.1:{port}", "ETL_PLATFORM_HOME": str(home)}
        etl = str(Path(sys.executable).with_name("etl-platform"))
        for _ in range(2):  # twice: upserted by event_id
            run = subprocess.run([etl, "run", "--config", str(EXAMPLES / "json_api_events.yaml")], env=env,
                                 capture_output=True, text=True, timeout=120)
            assert run.returncode == 0, run.stderr
            assert run.stdout.count("250 read, 250 written") == 1, run.stdout  # the summary, once
    finally:
        api.terminate()
        api.wait(10)
    rows = duckdb.sql(f"SELECT count(*), count(DISTINCT event_id) FROM '{home}/jobs_output/api_events/*.parquet'"
                      ).fetchall()
    assert rows == [(250, 250)]


def test_the_seed_reader_plugin_example_job(home, monkeypatch):
    """examples/jobs/json_api_events.yaml as shipped: the seed's JSONAPIReader pages through the API, the asset's
    schema maps each record (nested meta.at, a default), the rows land as parquet, upserted by event_id."""
    with servers.http_server(EventsApi) as url:
        monkeypatch.setenv("EVENTS_API_URL", url)
        monkeypatch.setenv("EVENTS_API_TOKEN", "secret-token")
        assert validate_job(EXAMPLES / "json_api_events.yaml") == []
        spec = load_job(EXAMPLES / "json_api_events.yaml")
        lines = []
        results = run_job(spec, log=lines.append)
        assert (results[0].records_read, results[0].records_written, results[0].batches) == (250, 250, 3)
        assert "250 records read" not in lines  # progress lines name counts as they grow
        again = run_job(spec, log=lines.append)  # upsert by event_id: the same 250 rows, not 500
        assert again[0].records_written == 250
    rows = duckdb.sql(f"SELECT count(*), count(DISTINCT event_id), min(happened_at)::VARCHAR, max(amount) "
                      f"FROM '{home}/jobs_output/api_events/*.parquet'").fetchall()
    assert rows == [(250, 250, "2024-06-01 10:00:00+00", 375.0)]
    assert "secret-token" not in "\n".join(lines)


def test_a_plugin_writer_gets_batches_then_commit(home, tmp_path, monkeypatch):
    job = plugin_job(tmp_path, "jsonl_writer.py:JSONLinesWriter", tmp_path / "jsonl")
    with servers.http_server(EventsApi) as url:
        monkeypatch.setenv("EVENTS_API_URL", url)
        result = run_job(load_job(job), log=lambda line: None)[0]
    assert result.records_written == 250
    manifest = json.loads((tmp_path / "jsonl" / "_manifest.json").read_text())
    assert [f["record_count"] for f in manifest["files"]] == [100, 100, 50] and manifest["asset"] == "api_events"
    job.write_text(job.read_text().replace("  mode: append\n", f"  mode: append\n  path: {tmp_path}/elsewhere\n"))
    assert validate_job(job) == [f"target.path: '{tmp_path}/elsewhere' must stay inside the target: a relative "
                                 "path without .."]


# ---------------------------------------------------------------- problems, named


def test_validate_names_every_problem_with_its_yaml_path(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    job = tmp_path / "broken.yaml"
    job.write_text("""
tenant_id: acme corp
source_connector: oracle
target_connector: s3
asset:
  name: users
  schema:
    - {name: user id, type: integer}
    - {name: email, type: text}
source:
  tables: [users, "users; DROP TABLE x"]
  incremental: {cursor_field: updated_at}
target:
  mode: append
  partitioning: ["../etc"]
schedule: every hour
colour: blue
""")
    problems = validate_job(job)
    assert problems == [
        "asset.schema[1].type: must be one of 'array', 'bool', 'boolean', 'date', 'date-time', 'datetime', 'float', "
        "'int', 'integer', 'number', 'object', 'str', 'string' or 'timestamp'",
        "colour: unknown key; allowed: asset, asset_path, description, environment, name, schedule, source, "
        "source_connector, source_connector_path, target, target_connector, target_connector_path, tenant_id",
        "tenant_id: 'acme corp' must be a name of letters, digits and _",
        "asset.schema[0].name: 'user id' must be a column name of letters, digits and _",
        "source_connector: 'oracle' is not a built-in reader (azure_blob, cassandra, delta, files, gcs, http, kafka, local, "
        "mariadb, mongo, mongodb, mssql, mysql, opensearch, postgres, postgresql, rabbitmq, rest, s3, solr, sqlite, "
        "sqlserver, sqs); or set source.custom_reader",
        "source.tables[1]: 'users; DROP TABLE x' must be a name like users or crm.users (letters, digits, _)",
        "target.mode: an incremental read re-reads the rows at its mark (>=) and in the lookback window; append "
        "would double them: use upsert with id_columns",
        "target.partitioning: ['../etc'] must be a list of column names",
        "schedule: 'every hour' is not a cron expression like '0 * * * *'",
    ]
    code, output = cli("validate", str(job))
    assert code == 1 and "9 problem(s)" in output and "  schedule: 'every hour'" in output
    job.write_text("tenant_id: a\nsource_connector: postgres\ntarget_connector: local\nasset: {name: x}\n"
                   "source: {credentials: {password: '${NOT_SET_ANYWHERE}'}}\n")
    assert validate_job(job) == ["source.credentials.password uses ${NOT_SET_ANYWHERE}, but the environment "
                                 "variable NOT_SET_ANYWHERE is not set"]


def test_validate_checks_every_type_with_the_typed_model(tmp_path):
    """Issue 20, item 22: `required: "false"` (a string) made the field required, `enum: "abc"` passed validate and
    failed at run time. The job file is checked by a typed model (pydantic, extra keys forbidden)."""
    job = tmp_path / "typed.yaml"
    job.write_text("tenant_id: t\nsource_connector: postgres\ntarget_connector: local\n"
                   "asset:\n  name: x\n  schema:\n    - {name: a, required: 'false', enum: abc}\n"
                   "    - {name: b, unique: 1}\n"
                   "source: {tables: [{nam: users}], incremental: {cursor_field: at, lookback: soon}}\n"
                   "target: {mode: apend, id_columns: id}\n")
    assert validate_job(job) == [
        "asset.schema[0].required: must be true or false, not str",
        "asset.schema[0].enum: must be a list, not str",
        "asset.schema[1].unique: must be true or false, not int",
        "source.tables[0].name: is required",
        "source.tables[0].nam: unknown key; allowed: name",
        "source.incremental.lookback: must be a number, not str",
        "target.mode: must be one of 'append', 'overwrite' or 'upsert'",
        "target.id_columns: must be a list, not str",
    ]


def test_the_job_file_json_schema_is_printed_for_editors():
    """Issue 20, item 22: `etl-platform schema job` emits the typed model's JSON Schema."""
    import json

    from etl_platform.jobs.schema import Source, Target
    from etl_platform.plugins import SOURCE_KEYS, TARGET_KEYS

    code, output = cli("schema", "job")
    schema = json.loads(output)
    assert code == 0 and schema["title"] == "etl_platform YAML job" and schema["required"] == ["tenant_id"]
    assert schema["additionalProperties"] is False and "source_connector" in schema["properties"]
    field = schema["$defs"]["FieldSpec"]["properties"]
    assert field["required"]["type"] == "boolean" and field["enum"]["anyOf"][0]["type"] == "array"
    # what a plugin's SourceConfig / TargetConfig accepts is what the job file may hold
    assert set(Source.model_fields) == set(SOURCE_KEYS) and set(Target.model_fields) == set(TARGET_KEYS)


def test_validate_never_runs_plugin_code_and_run_refuses_plugins_from_elsewhere(tmp_path, monkeypatch):
    """Issue 20, item 20: validate imported a plugin from outside the project and ran its code. Validate reads the
    plugin's file without running it; run loads plugins from the job file's folder (or ETL_PLATFORM_PLUGIN_PATHS)
    only, naming a refused path."""
    monkeypatch.delenv("ETL_PLATFORM_PLUGIN_PATHS", raising=False)
    ran = tmp_path / "the_plugin_ran"
    plugin_code = (f"import pathlib\npathlib.Path({str(ran)!r}).write_text('yes')\n"
                   "from etl_platform.plugins import BaseReader\n"
                   "class Sneaky(BaseReader):\n    def extract(self, state_manager=None):\n        yield []\n")
    jobs, elsewhere = tmp_path / "jobs", tmp_path / "elsewhere"
    jobs.mkdir(), elsewhere.mkdir()
    (jobs / "reader.py").write_text(plugin_code)
    (elsewhere / "reader.py").write_text(plugin_code)
    job = jobs / "job.yaml"
    for reader in ("reader.py:Sneaky", "../elsewhere/reader.py:Sneaky"):
        job.write_text(f"tenant_id: t\nasset: {{name: x}}\nsource: {{custom_reader: '{reader}'}}\n"
                       "target_connector: local\ntarget: {connection: {base_path: out}}\n")
        problems = validate_job(job)
        assert not ran.exists(), "validate ran the plugin's code"
        if reader.startswith(".."):
            assert problems == [f"source.custom_reader: {elsewhere / 'reader.py'} is outside the job file's folder "
                                f"{jobs}; plugins are loaded from there, or from the folders "
                                "ETL_PLATFORM_PLUGIN_PATHS names"]
            with pytest.raises(ConfigurationError, match="is outside the job file's folder"):
                load_job(job)
            assert not ran.exists()
        else:
            assert problems == []
    monkeypatch.setenv("ETL_PLATFORM_PLUGIN_PATHS", str(elsewhere))  # told otherwise: that folder is allowed
    assert load_job(job).reader_class.__name__ == "Sneaky" and ran.exists()


def test_a_reader_keeping_state_with_an_append_target_is_refused(tmp_path, monkeypatch):
    """Issue 20: the state a plugin keeps is saved after the target commits; with append a run killed between the
    two would append the records again. validate refuses the pair, reading the plugin (not running it)."""
    monkeypatch.delenv("ETL_PLATFORM_PLUGIN_PATHS", raising=False)
    (tmp_path / "readers.py").write_text(
        "from etl_platform.plugins import BaseReader\n"
        "class Keeps(BaseReader):\n    def extract(self, state_manager=None):\n"
        "        yield [{'a': 1}]\n        state_manager.set('since', 1)\n"
        "class Inherits(Keeps):\n    pass\n"
        "class Forgets(BaseReader):\n    def extract(self, state_manager=None):\n        yield [{'a': 1}]\n")
    job = tmp_path / "job.yaml"

    def problems(reader: str, mode: str) -> list[str]:
        job.write_text(f"tenant_id: t\nasset: {{name: x}}\nsource: {{custom_reader: 'readers.py:{reader}'}}\n"
                       f"target_connector: local\ntarget: {{mode: {mode}, id_columns: [a], "
                       "connection: {base_path: out}}\n")
        return validate_job(job)

    refused = ("target.mode: append with a reader that keeps state (readers.py:{} calls state_manager.set): the "
               "state is saved after the target commits, so a run killed between the two would append the same "
               "records again; use upsert with id_columns, or overwrite")
    assert problems("Keeps", "append") == [refused.format("Keeps")]
    assert problems("Inherits", "append") == [refused.format("Inherits")]
    assert problems("Forgets", "append") == [] and problems("Keeps", "upsert") == []


# ---------------------------------------------------------------- what a run of the source delivers → the modes


FILES_JOB = """
tenant_id: acme
source_connector: files
target_connector: local
asset: {name: orders_mirror}
source:
  connection: {url: "${TEST_FILES}", glob: "*.csv"}
target:
  connection: {base_path: "${TEST_OUTPUT}"}
  format: parquet
"""


def test_a_files_job_overwriting_its_target_reads_every_file_each_run(home, tmp_path, monkeypatch):
    """A files source delivers only the files changed since its last read; the default mode, overwrite, made the
    target those alone: adding c.csv left the target without a and b. An overwrite now reads every file, so the
    target mirrors the files through new, changed and deleted ones."""
    files, out = tmp_path / "files", tmp_path / "out"
    files.mkdir()
    monkeypatch.setenv("TEST_FILES", str(files))
    monkeypatch.setenv("TEST_OUTPUT", str(out))
    job = tmp_path / "orders_mirror.yaml"
    job.write_text(FILES_JOB)
    (files / "a.csv").write_text("id,amount\n1,10\n2,20\n")
    (files / "b.csv").write_text("id,amount\n3,30\n")

    def target() -> list[tuple]:
        return duckdb.sql(f"SELECT id::INT, amount::INT FROM '{out}/orders_mirror/*.parquet' ORDER BY 1").fetchall()

    assert validate_job(job) == []
    code, output = cli("run", "--config", str(job))
    assert code == 0, output
    assert target() == [(1, 10), (2, 20), (3, 30)]
    (files / "c.csv").write_text("id,amount\n4,40\n")
    code, output = cli("run", "--config", str(job))
    assert code == 0, output
    assert target() == [(1, 10), (2, 20), (3, 30), (4, 40)]  # was [(4, 40)]: a and b had left the target
    (files / "a.csv").write_text("id,amount\n1,11\n")
    (files / "b.csv").unlink()
    code, output = cli("run", "--config", str(job))
    assert code == 0, output
    assert target() == [(1, 11), (4, 40)]


def test_a_files_job_quarantines_a_file_it_cannot_read_unless_rows_of_it_were_written(home, tmp_path, monkeypatch):
    """A parquet with no footer is refused before any of its rows are read: quarantined whole, the other files
    written. A gzip cut short is found out after some of its rows went to the target: the run fails naming the
    file, saving no state (the target keeps its previous version: an overwrite publishes all or nothing)."""
    files, out = tmp_path / "files", tmp_path / "out"
    files.mkdir()
    monkeypatch.setenv("TEST_FILES", str(files))
    monkeypatch.setenv("TEST_OUTPUT", str(out))
    job = tmp_path / "orders_mirror.yaml"
    job.write_text(FILES_JOB.replace('glob: "*.csv"', 'glob: "*"'))
    (files / "a.csv").write_text("id,amount\n1,10\n")
    (files / "b.parquet").write_bytes(b"PAR1 no footer")
    [result] = run_job(load_job(job), log=lambda message: None)
    assert (result.records_written, result.records_quarantined) == (1, 1)
    [entry] = [json.loads(line) for line in Path(result.quarantine_file).read_text().splitlines()]
    assert entry["record"] == "b.parquet" and entry["reasons"][0].startswith("the file cannot be read as parquet")
    (files / "b.parquet").unlink()
    whole = gzip.compress(b"id,amount\n" + b"7,1\n" * 20_000_000, compresslevel=1)  # 80 MB: 8 MB blocks
    (files / "c.csv.gz").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(QueryError, match=r"c.csv.gz: the file cannot be read as csv \(gzip\): Compressed file "
                                         r"ended .*, after some of its rows were written to the target; the run "
                                         "fails and saves no state"):
        run_job(load_job(job), log=lambda message: None)
    assert duckdb.sql(f"SELECT count(*) FROM '{out}/orders_mirror/*.parquet'").fetchall() == [(1,)]


def test_target_modes_a_source_would_lose_or_double_rows_with_are_refused(tmp_path):
    """Each source's runs deliver the whole object, what changed since a cursor's mark, the changed files, or the
    messages that arrived (``Source.delivers``): validate refuses the target modes that would lose or double rows
    with it, naming why and what to use; the defaults are the safe ones."""
    job = tmp_path / "job.yaml"

    def problems(source: str, target: str, schema: str = "") -> list[str]:
        job.write_text(f"tenant_id: t\nasset: {{name: x{schema}}}\ntarget_connector: local\n{source}\n"
                       f"target: {{connection: {{base_path: out}}{target}}}\n")
        return validate_job(job)

    incremental = ("source_connector: postgres\nsource: {connection: {host: h, database: d, username: u}, "
                   "tables: [t], incremental: {cursor_field: updated_at}}")
    files = "source_connector: files\nsource: {connection: {url: in}}"
    queue = "source_connector: rabbitmq\nsource: {connection: {queue: events}}"
    assert problems(incremental, ", mode: overwrite") == [
        "target.mode: an incremental read gives the rows changed since its mark, and overwrite makes the target "
        "only those: the rest would be lost; use upsert (the default with incremental), or remove "
        "source.incremental to read everything each run"]
    assert problems(files, ", mode: append") == [
        "target.mode: a files source reads a changed file again, whole: append would add its rows twice; use "
        "overwrite (the default: the target mirrors the files, all read each run) or upsert with id_columns"]
    assert problems(queue, ", mode: append") == [
        "target.mode: a queue redelivers the messages of a run killed between the target's commit and their "
        "acknowledgement: append would write them twice; use upsert (the default: by _message_id, so a message "
        "lands once)"]
    assert problems(queue, ", mode: overwrite") == [
        "target.mode: a queue's messages are read once: overwrite would leave only the last run's in the target; "
        "use upsert (the default: by _message_id)"]
    assert problems(queue, "", ", schema: [{name: body, type: string, source: _record}]") == [
        "asset.schema: the messages are upserted by _message_id (their identity: a message delivered again lands "
        "once), which the schema does not write: add {name: _message_id, type: string}, or set target.id_columns"]
    # the defaults, and the modes that keep every row once
    assert problems(incremental, ", id_columns: [id]") == [] and problems(files, "") == [] \
        and problems(queue, "") == []
    assert problems(files, ", mode: upsert, id_columns: [id]") == []
    assert problems(queue, "", ", schema: [{name: _message_id, type: string}, {name: body, type: string, "
                               "source: _record}]") == []
    assert problems("source_connector: postgres\nsource: {connection: {host: h, database: d, username: u}, "
                    "tables: [t]}", ", mode: append") == []  # a whole read, appended: a snapshot per run


def test_an_upsert_quarantines_a_record_without_its_key_and_writes_the_rest(home, tmp_path, monkeypatch):
    """A record whose key is empty failed the whole run, every run ("'id' is NULL in 1 row(s)", naming neither
    record nor file): now it is quarantined with its place in the read and the reason, and the rest is written.
    A key column the records do not have is the job's error, naming target.id_columns and the columns there are."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "a.csv").write_text("id,v\n1,a\nx,b\n,c\n2,d\n")
    monkeypatch.setenv("TEST_FILES", str(files))
    monkeypatch.setenv("TEST_OUTPUT", str(tmp_path / "out"))
    job = tmp_path / "orders_mirror.yaml"
    job.write_text(FILES_JOB.replace("asset: {name: orders_mirror}", "asset: {name: orders_mirror, schema: [{name: "
                                     "id, type: integer}, {name: v, type: string}]}")
                   + "  mode: upsert\n  id_columns: [id]\n")
    [result] = run_job(load_job(job), log=lambda message: None)
    assert (result.records_read, result.records_written, result.records_quarantined) == (4, 2, 2)
    assert duckdb.sql(f"SELECT id, v FROM '{tmp_path}/out/orders_mirror/*.parquet' ORDER BY 1").fetchall() == [
        (1, "a"), (2, "d")]
    quarantined = [json.loads(line) for line in Path(result.quarantine_file).read_text().splitlines()]
    assert [(q["record"], q["reasons"]) for q in quarantined] == [
        (1, ["id: value 'x' is not an integer"]),
        (2, ["id: no value: the upsert matches records by target.id_columns (id)"])]
    job.write_text(FILES_JOB + "  mode: upsert\n  id_columns: [order_id]\n")
    with pytest.raises(ConfigurationError, match=r"target.id_columns: order_id is not a column of the records \(they "
                                                 r"have id, v, _source_file\)"):
        run_job(load_job(job), full_refresh=True, log=lambda message: None)


def test_several_objects_overwriting_one_collection_are_refused(tmp_path):
    """Two tables into the MongoDB collection the connection names, overwrite (the default): the second table's
    overwrite replaced the first's rows. Refused, naming the collection; each object writing its own place (the
    default), or upsert, is fine."""
    job = tmp_path / "job.yaml"

    def problems(target: str, connection: str, mode: str = "") -> list[str]:
        job.write_text(f"tenant_id: t\nasset: {{name: x}}\nsource_connector: sqlite\n"
                       "source: {connection: {path: db.sqlite}, tables: [users, orders]}\n"
                       f"target_connector: {target}\ntarget: {{connection: {{{connection}}}{mode}}}\n")
        return validate_job(job)

    assert problems("mongodb", "uri: 'mongodb://h', database: d, collection: everything") == [
        "target.connection.collection: 2 objects overwrite the one collection 'everything': each would replace the "
        "one before, leaving only the last; remove it, so each object writes the collection named after it, or "
        "use upsert"]
    assert problems("solr", "url: 'http://h/solr/c'") == [
        "target.mode: 2 objects overwrite the one solr collection of target.connection.url: each would replace the "
        "one before, leaving only the last; use upsert, or one job per object"]
    assert problems("mongodb", "uri: 'mongodb://h', database: d") == []
    assert problems("mongodb", "uri: 'mongodb://h', database: d, collection: everything",
                    ", mode: upsert, id_columns: [id]") == []


def test_objects_whose_names_would_be_the_same_key_folder_and_place_are_refused(tmp_path):
    """crm.users and crm_users are both called crm_users as an asset key, a folder and a collection (dots become
    _): one object's rows would replace or mix with the other's, and Dagster would see one asset key twice. Refused,
    naming both, whatever the target; distinct names pass, and a one-object job's key and folder take the job's
    name."""
    job = tmp_path / "job.yaml"

    def problems(tables: str, target: str = "local", connection: str = "base_path: out") -> list[str]:
        job.write_text(f"tenant_id: t\nasset: {{name: x}}\nsource_connector: sqlite\n"
                       f"source: {{connection: {{path: db.sqlite}}, tables: [{tables}]}}\n"
                       f"target_connector: {target}\ntarget: {{connection: {{{connection}}}}}\n")
        return validate_job(job)

    refused = ("source.tables: 'crm.users' and 'crm_users' would all be named 'crm_users' (their asset key, folder "
               "and place in the target): list each object once, or read them in jobs of their own")
    assert problems("crm.users, crm_users") == [refused]
    assert problems("crm.users, orders, crm_users", "mongodb", "uri: 'mongodb://h', database: d") == [refused]
    assert problems("users, users")[0].startswith("source.tables: 'users' and 'users' would all be named 'users'")
    assert problems("crm.users, crm.orders") == []
    assert load_job(job).object_name("crm.users") == "crm_users"
    assert problems("crm.users") == []
    assert load_job(job).object_name("crm.users") is None  # one object: the job's own name and path are used


def test_a_queue_job_writes_each_message_once_through_a_kill_before_the_acknowledgement(home, tmp_path,
                                                                                       monkeypatch, rabbit_queue):
    """RabbitMQ → parquet with the default mode (upsert by ``_message_id``): a run dies after the target's commit,
    before the acknowledgement, so its messages come again with a new one; then a third run. Every message is in
    the target once (overwrite, the default before, kept only the last run's messages)."""
    from etl_platform.connectors.rabbitmq.reader import RabbitMQExtraction

    name, publish, _ = rabbit_queue
    out = tmp_path / "out"
    monkeypatch.setenv("TEST_OUTPUT", str(out))
    job = tmp_path / "events.yaml"
    job.write_text(f"tenant_id: acme\nsource_connector: rabbitmq\ntarget_connector: local\nasset: {{name: events}}\n"
                   f"source: {{connection: {{queue: {name}, password: guest, wait_seconds: 0.5}}}}\n"
                   "target: {connection: {base_path: '${TEST_OUTPUT}'}, format: parquet}\n")

    def target() -> list[tuple]:
        return duckdb.sql(f"SELECT _record->>'n', count(*) FROM '{out}/events/*.parquet' GROUP BY 1 ORDER BY 1"
                          ).fetchall()

    publish([b'{"n": "1"}', b'{"n": "2"}', b'{"n": "3"}'])
    acknowledge = RabbitMQExtraction.acknowledge

    def dies(self):
        raise RuntimeError("the process died after the target's commit")

    monkeypatch.setattr(RabbitMQExtraction, "acknowledge", dies)
    with pytest.raises(RuntimeError, match="died"):
        run_job(load_job(job), log=lambda message: None)
    assert target() == [("1", 1), ("2", 1), ("3", 1)]
    monkeypatch.setattr(RabbitMQExtraction, "acknowledge", acknowledge)
    publish([b'{"n": "4"}'])
    [result] = run_job(load_job(job), log=lambda message: None)
    assert result.records_read == 4  # the three redelivered, and the new one
    publish([b'{"n": "5"}'])
    run_job(load_job(job), log=lambda message: None)
    assert target() == [("1", 1), ("2", 1), ("3", 1), ("4", 1), ("5", 1)]


def test_a_variable_in_any_field_is_shown_by_its_name_not_its_value(tmp_path, monkeypatch):
    """Issue 20, item 21 (c): a ${VAR} put in a field that is not a secret one was printed by validate."""
    secret = "SENTINEL-pa ss-%7e"
    monkeypatch.setenv("LEAKY_VALUE", secret)
    job = tmp_path / "leaky.yaml"
    job.write_text("tenant_id: '${LEAKY_VALUE}'\nsource_connector: postgres\ntarget_connector: local\n"
                   "asset: {name: x}\nsource: {tables: ['${LEAKY_VALUE}']}\n")
    problems = validate_job(job)
    assert problems == ["tenant_id: '${LEAKY_VALUE}' must be a name of letters, digits and _",
                        "source.tables[0]: '${LEAKY_VALUE}' must be a name like users or crm.users (letters, digits, _)"]
    code, output = cli("validate", str(job))
    assert code == 1 and "SENTINEL" not in output and "%7e" not in output
    with pytest.raises(ConfigurationError) as raised:
        load_job(job)
    assert "SENTINEL" not in str(raised.value)


def test_plugin_errors_are_named(tmp_path, monkeypatch):
    plugin = tmp_path / "plugins.py"
    plugin.write_text("from etl_platform.plugins import BaseReader\n"
                      "class Good(BaseReader):\n    def extract(self, state_manager=None):\n"
                      "        yield [{'a': 1}]\n        raise RuntimeError('the API went away')\n"
                      "class NotAReader:\n    pass\n")
    job = tmp_path / "job.yaml"

    def problems(reader: str) -> list[str]:
        job.write_text(f"tenant_id: t\nasset: {{name: x}}\nsource: {{custom_reader: '{reader}'}}\n"
                       "target_connector: local\ntarget: {connection: {base_path: out}}\n")
        return validate_job(job)

    assert problems("missing.py:Good") == [f"source.custom_reader: plugin module not found: {tmp_path}/missing.py"]
    assert problems("plugins.py:Bad") == [f"source.custom_reader: class 'Bad' not found in {plugin}; it defines Good"]
    assert problems("plugins.py:NotAReader") == [
        f"source.custom_reader: NotAReader in {plugin} does not derive from etl_platform.plugins.BaseReader"]
    assert problems("plugins.py") == ["source.custom_reader: 'plugins.py' must be 'path/to/file.py:ClassName'"]
    assert problems("plugins.py:Good") == []
    monkeypatch.setenv("ETL_PLATFORM_PLUGIN_PATHS", f"{tmp_path}/approved:/srv/plugins")
    assert problems("plugins.py:Good") == [f"source.custom_reader: {plugin} is outside the plugin folders of "
                                           f"ETL_PLATFORM_PLUGIN_PATHS ({tmp_path}/approved, /srv/plugins)"]
    monkeypatch.setenv("ETL_PLATFORM_PLUGIN_PATHS", str(tmp_path))
    with pytest.raises(PluginError, match="source.custom_reader Good failed: RuntimeError: the API went away") as caught:
        run_job(load_job(job), log=lambda line: None)
    assert isinstance(caught.value.__cause__, RuntimeError)  # the plugin's own traceback is kept
    assert not (tmp_path / "out").exists()  # nothing was published


# ---------------------------------------------------------------- in Dagster


def test_job_files_become_assets_with_checks_and_a_broken_one_is_shown(home, tmp_path, monkeypatch, users_table):
    import dagster as dg

    from etl_platform.jobs.assets import build_job_definitions

    folder = tmp_path / "jobs"
    folder.mkdir()
    (folder / "crm_users.yaml").write_text(PG_JOB + 'schedule: "15 * * * *"\n')
    (folder / "broken.yaml").write_text("tenant_id: acme\nsource_connector: oracle\n")
    monkeypatch.setenv("TEST_PG_PASSWORD", "x")
    monkeypatch.setenv("TEST_OUTPUT", str(tmp_path / "out"))
    defs = build_job_definitions([folder])
    assets = list(defs.assets)
    keys = sorted(a.key.to_user_string() for a in assets)
    assert keys == ["jobs/_invalid/broken", "jobs/acme/crm_users"]
    schedule = next(iter(defs.schedules))
    assert schedule.cron_schedule == "15 * * * *" and schedule.name == "acme_crm_users_schedule"
    job_asset = next(a for a in assets if a.key.to_user_string() == "jobs/acme/crm_users")
    assert job_asset.metadata_by_key[job_asset.key]["dagster/column_schema"].columns[0].name == "user_id"

    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), memory_limit="256MB")
    result = dg.materialize([job_asset], resources={"warehouse": warehouse})
    assert result.success
    metadata = result.asset_materializations_for_node(job_asset.op.name)[0].metadata
    # the state is in the step's warehouse (jobs/state.py)
    assert "cursor" in WarehouseJobStates(warehouse).load("acme", "crm_users", "etl_job_users").state
    assert (metadata["records_read"].value, metadata["records_written"].value,
            metadata["records_quarantined"].value) == (3, 2, 1)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["conforms_to_schema"].passed and checks["conforms_to_schema"].severity.value == "WARN"
    assert checks["keys_unique"].passed and checks["keys_unique"].metadata["duplicate_keys"].value == 0

    broken = next(a for a in assets if a.key.to_user_string() == "jobs/_invalid/broken")
    assert "source_connector: 'oracle' is not a built-in reader" in broken.descriptions_by_key[broken.key]
    failed = dg.materialize([broken], raise_on_error=False)
    assert not failed.success


def test_the_example_jobs_load_in_dagster_definitions_validate(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "ETL_PLATFORM_JOBS": str(EXAMPLES), "DAGSTER_HOME": str(tmp_path),
           "ETL_PLATFORM_HOME": str(tmp_path / "home")}
    env.pop("EVENTS_API_URL", None)
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run([str(dagster), "definitions", "validate", "-m", "etl_platform.definitions"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    listed = subprocess.run([str(dagster), "asset", "list", "-m", "etl_platform.definitions"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180)
    assert {"jobs/demo/api_events", "jobs/demo/api_events_delta", "jobs/demo/api_events_avro", "jobs/demo/customers",
            "jobs/demo/rest_orders"} <= set(listed.stdout.split()) and "_invalid" not in listed.stdout


def test_a_defs_folder_component_loads_a_jobs_folder(tmp_path, monkeypatch):
    """The Components form: defs/<domain>/defs.yaml with type etl_platform.jobs.component.YamlJobs."""
    import shutil

    import dagster as dg

    project = tmp_path / "proj"
    domain = project / "src" / "proj" / "defs" / "crm"
    (domain / "jobs").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "proj"\nversion = "0.1"\n[tool.dg]\n'
                                            'directory_type = "project"\n[tool.dg.project]\nroot_module = "proj"\n')
    for init in (project / "src" / "proj" / "__init__.py", project / "src" / "proj" / "defs" / "__init__.py"):
        init.write_text("")
    (domain / "defs.yaml").write_text("type: etl_platform.jobs.component.YamlJobs\nattributes:\n  jobs_folder: jobs\n")
    shutil.copy(EXAMPLES / "json_api_events.yaml", domain / "jobs")
    shutil.copytree(EXAMPLES / "plugins", domain / "jobs" / "plugins")
    (domain / "jobs" / "broken.yaml").write_text("tenant_id: demo\n")
    monkeypatch.syspath_prepend(str(project / "src"))
    defs = dg.load_from_defs_folder(path_within_project=project)
    assert sorted(a.key.to_user_string() for a in defs.assets) == ["jobs/_invalid/broken", "jobs/demo/api_events"]
    assert [s.cron_schedule for s in defs.schedules] == ["0 * * * *"]


class OrdersApi(JsonApi):
    """A shop API: /orders?page=&per_page= → {data: [...]} (an empty page ends), bearer token required."""

    token = "shop-token"
    orders = [{"id": i, "customer": {"name": f"c{i % 7}"}, "total": "12.50" if i != 42 else "n/a",
               "created_at": f"2024-07-0{1 + i % 9}T08:00:00Z"} for i in range(1, 231)]

    def page(self, query: dict) -> dict:
        page, size = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["100"])[0])
        return {"data": self.orders[(page - 1) * size: page * size]}


def test_example_rest_api_to_s3_job(home, monkeypatch):
    import boto3

    with servers.http_server(OrdersApi) as api, servers.moto_s3() as s3:
        client = boto3.client("s3", endpoint_url=s3, aws_access_key_id="k", aws_secret_access_key="s",
                              region_name="us-east-1")
        client.create_bucket(Bucket="shop-lake")
        for name, value in {"ORDERS_API_URL": api, "ORDERS_API_TOKEN": "shop-token", "ORDERS_BUCKET": "shop-lake",
                            "S3_ENDPOINT_URL": s3, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}.items():
            monkeypatch.setenv(name, value)
        result = run_job(load_job(EXAMPLES / "rest_orders_to_s3.yaml"), log=lambda line: None)[0]
        assert (result.records_read, result.records_written, result.records_quarantined) == (230, 229, 1)
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="shop-lake", Prefix="shop/")["Contents"]]
        assert len(keys) == 1 and keys[0].startswith("shop/rest_orders/part-")
        body = client.get_object(Bucket="shop-lake", Key=keys[0])["Body"].read()
    import io

    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(body))
    assert table.column_names == ["order_id", "customer", "total", "ordered_at"] and table.num_rows == 229
    assert 42 not in table["order_id"].to_pylist()


def test_example_postgres_to_mongodb_upsert_job(home, monkeypatch):
    import pymongo

    table = "etl_test_jobs.customers"  # the suite's own schema (this file's: files run in parallel), not a user's
    with psycopg.connect(PG, autocommit=True) as conn, servers.mongo_server() as uri:
        conn.execute("CREATE SCHEMA IF NOT EXISTS etl_test_jobs")
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text, tier text, updated_at timestamptz)")
        conn.execute(f"INSERT INTO {table} SELECT i, 'customer ' || i, CASE WHEN i % 3 = 0 THEN 'pro' END, "
                     "'2024-01-01'::timestamptz + i * interval '1 minute' FROM generate_series(1, 500) i")
        monkeypatch.setenv("MONGO_URI", uri)
        monkeypatch.setenv("CUSTOMERS_TABLE", table)
        spec = load_job(EXAMPLES / "postgres_customers_to_mongodb.yaml")
        first = run_job(spec, log=lambda line: None)[0]
        conn.execute(f"UPDATE {table} SET tier = 'enterprise', updated_at = '2024-02-01' WHERE id = 7")
        second = run_job(spec, log=lambda line: None)[0]
        collection = pymongo.MongoClient(uri)["crm"]["customers"]
        try:
            assert (first.records_written, second.records_read) == (500, 2)  # the row at the mark, the updated one
            assert collection.count_documents({}) == 500
            assert collection.find_one({"customer_id": 7})["tier"] == "enterprise"
            assert collection.find_one({"customer_id": 1})["tier"] == "free"  # the schema's default
        finally:
            conn.execute(f"DROP TABLE {table}")


def plugin_job(tmp_path: Path, writer: str, output: Path, mode: str = "append") -> Path:
    """A job beside a copy of the example plugins (a plugin is loaded from the job file's folder)."""
    import shutil

    shutil.copytree(EXAMPLES / "plugins", tmp_path / "plugins", dirs_exist_ok=True)
    job = tmp_path / f"{writer.split(':')[1]}.yaml"
    job.write_text(f"""
tenant_id: demo
asset:
  name: api_events
  schema:
    - {{name: event_id, type: integer, required: true, source: id}}
    - {{name: kind, type: string}}
    - {{name: happened_at, type: timestamp, source: meta.at}}
source:
  custom_reader: plugins/json_api_reader.py:JSONAPIReader
  connection: {{base_url: "${{EVENTS_API_URL}}"}}
  credentials: {{token: secret-token}}
  engine: {{options: {{page_size: 100}}}}
target:
  custom_writer: plugins/{writer}
  mode: {mode}
  connection: {{output_base: "{output}"}}
""")
    return job


def test_a_writer_plugin_gets_a_folder_per_object(home, tmp_path):
    """A built-in reader of two tables into a writer plugin: both wrote part-00000.jsonl and the manifest in the
    one output_base, so the second table replaced the first. Each object now has its own folder below it."""
    import shutil
    import sqlite3

    shutil.copytree(EXAMPLES / "plugins", tmp_path / "plugins")
    with sqlite3.connect(tmp_path / "shop.sqlite") as db:
        db.execute("CREATE TABLE users (id INTEGER, name TEXT)")
        db.execute("INSERT INTO users VALUES (1, 'ann'), (2, 'bob')")
        db.execute("CREATE TABLE orders (id INTEGER, amount REAL)")
        db.execute("INSERT INTO orders VALUES (10, 1.5)")
    job = tmp_path / "shop.yaml"
    job.write_text(f"tenant_id: demo\nasset: {{name: shop}}\nsource_connector: sqlite\n"
                   f"source: {{connection: {{path: '{tmp_path / 'shop.sqlite'}'}}, tables: [users, orders]}}\n"
                   f"target: {{custom_writer: plugins/jsonl_writer.py:JSONLinesWriter, mode: overwrite, "
                   f"connection: {{output_base: '{tmp_path / 'out'}'}}}}\n")
    results = run_job(load_job(job), log=lambda message: None)
    assert [(r.target, r.records_written) for r in results] == [(f"{tmp_path}/out/users", 2),
                                                                (f"{tmp_path}/out/orders", 1)]
    for table, ids in (("users", [1, 2]), ("orders", [10])):
        lines = (tmp_path / "out" / table / "part-00000.jsonl").read_text().splitlines()
        assert [json.loads(line)["id"] for line in lines] == ids
        assert json.loads((tmp_path / "out" / table / "_manifest.json").read_text())["files"][0]["record_count"] \
            == len(ids)


def test_the_delta_lake_writer_plugin_commits_a_run_whole(home, tmp_path, monkeypatch):
    from deltalake import DeltaTable

    table_path = tmp_path / "delta" / "events"
    with servers.http_server(EventsApi) as url:
        monkeypatch.setenv("EVENTS_API_URL", url)
        run_job(load_job(plugin_job(tmp_path, "delta_writer.py:DeltaLakeWriter", table_path)), log=lambda line: None)
        run_job(load_job(plugin_job(tmp_path, "delta_writer.py:DeltaLakeWriter", table_path, "overwrite")),
                log=lambda line: None)
        table = DeltaTable(str(table_path))
        assert table.version() == 1 and table.to_pyarrow_table().num_rows == 250  # one commit per run
        assert table.schema().to_arrow().field("happened_at").type.tz == "UTC"
        monkeypatch.setattr(EventsApi, "events", EventsApi.events[:150] + ["not a dict"])
        with pytest.raises(PluginError, match="record 50 of batch 1 is a str, not a dict"):  # a reader defect
            run_job(load_job(plugin_job(tmp_path, "delta_writer.py:DeltaLakeWriter", table_path)),
                    log=lambda line: None)
    assert DeltaTable(str(table_path)).version() == 1  # the failed run committed nothing


def test_the_avro_writer_plugin_publishes_files_and_a_manifest(home, tmp_path, monkeypatch):
    from fastavro import reader

    with servers.http_server(EventsApi) as url:
        monkeypatch.setenv("EVENTS_API_URL", url)
        result = run_job(load_job(plugin_job(tmp_path, "avro_writer.py:AvroWriter", tmp_path / "avro")),
                         log=lambda line: None)[0]
    assert result.records_written == 250
    manifest = json.loads(next((tmp_path / "avro").glob("_manifest-*.json")).read_text())
    rows = [row for item in manifest["files"] for row in reader(open(item["path"], "rb"))]
    assert len(rows) == 250 and rows[0]["event_id"] == 1 and rows[0]["happened_at"].tzinfo is not None


def test_a_connector_file_gives_shared_settings_the_job_overrides(home, tmp_path, monkeypatch, users_table):
    (tmp_path / "connectors").mkdir()
    (tmp_path / "connectors" / "crm_db.yaml").write_text(
        "type: postgres\nconnection: {host: 127.0.0.1, port: 5432, database: wrong_db, username: postgres}\n"
        "credentials: {password: '${TEST_PG_PASSWORD}'}\n")
    job = tmp_path / "crm_users.yaml"
    job.write_text(PG_JOB.replace("source_connector: postgres\n", "source_connector_path: connectors/crm_db.yaml\n")
                   .replace("  connection: {host: 127.0.0.1, port: 5432, database: test, username: postgres}\n"
                            "  credentials: {password: \"${TEST_PG_PASSWORD}\"}\n", "  connection: {database: test}\n"))
    monkeypatch.setenv("TEST_PG_PASSWORD", "x")
    monkeypatch.setenv("TEST_OUTPUT", str(tmp_path / "out"))
    spec = load_job(job)
    assert spec.source_type == "postgres" and spec.source["connection"]["database"] == "test"
    assert run_job(spec, log=lambda line: None)[0].records_written == 2
    job.write_text(job.read_text().replace("source_connector_path:", "source_connector: mysql\nsource_connector_path:"))
    assert validate_job(job) == ["source_connector: 'mysql' but crm_db.yaml is a 'postgres' connector"]
