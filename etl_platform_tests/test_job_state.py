"""A YAML job's incremental state in the warehouse (etl_platform/jobs/state.py): shared by every worker of the
warehouse, saved only over the version a run read, an earlier state file taken over once. On DuckDB and on the
real PostgreSQL server (a fresh database per test: conftest's ``postgres_url``)."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_platform.jobs.state import FileJobStates, StaleStateError, WarehouseJobStates, job_states, \
    legacy_root
from etl_platform.warehouse.duckdb_warehouse import DuckDBWarehouse
from etl_platform.warehouse.postgres_warehouse import PostgresWarehouse

TENANT = "etl_test_tenant"


def duckdb_states(tmp_path) -> WarehouseJobStates:
    return WarehouseJobStates(DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), memory_limit="256MB"))


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_a_save_moves_only_the_version_it_read(tmp_path, request, engine):
    tenant = TENANT
    states = duckdb_states(tmp_path) if engine == "duckdb" else \
        WarehouseJobStates(PostgresWarehouse(url=request.getfixturevalue("postgres_url")))
    first = states.load(tenant, "orders", "public.orders")
    assert (first.state, first.version) == ({}, 0)
    states.save(tenant, "orders", "public.orders", {"cursor": "2024-01-01"}, first)
    mine, theirs = (states.load(tenant, "orders", "public.orders") for _ in range(2))
    assert (mine.state, mine.version) == ({"cursor": "2024-01-01"}, 1)
    states.save(tenant, "orders", "public.orders", {"cursor": "2024-02-01"}, theirs)
    with pytest.raises(StaleStateError, match=rf"job {tenant}/orders, object public.orders: another run saved"):
        states.save(tenant, "orders", "public.orders", {"cursor": "2024-01-15"}, mine)
    with pytest.raises(StaleStateError):  # a second "first" state is refused by the primary key
        states.save(tenant, "orders", "public.orders", {"cursor": "x"}, first)
    assert states.load(tenant, "orders", "public.orders").state == {"cursor": "2024-02-01"}
    assert states.load(tenant, "orders", None).version == 0  # another object of the job: its own row


def test_two_workers_saving_at_once_on_postgresql_one_wins(postgres_url):
    """Two threads (two workers of one PostgreSQL warehouse) read version 1 and save together, again and again:
    each time exactly one save lands and the other is told, never both. (It found that two connections setting
    up the warehouse at once failed on PostgreSQL's catalog: now serialized by an advisory lock.)"""
    tenant = TENANT
    warehouse = PostgresWarehouse(url=postgres_url)
    states = WarehouseJobStates(warehouse)
    states.save(tenant, "orders", None, {"n": 0}, states.load(tenant, "orders", None))
    for round_number in range(10):
        read = [states.load(tenant, "orders", None) for _ in range(2)]
        barrier, outcomes = threading.Barrier(2), []

        def save(worker: int) -> None:
            barrier.wait()
            try:
                states.save(tenant, "orders", None, {"n": round_number, "by": worker}, read[worker])
                outcomes.append("saved")
            except StaleStateError:
                outcomes.append("stale")

        threads = [threading.Thread(target=save, args=(worker,)) for worker in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["saved", "stale"], outcomes
        assert states.load(tenant, "orders", None).version == round_number + 2


STEP = st.tuples(st.sampled_from(["load", "save"]), st.integers(0, 2))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, max_size=25))
def test_interleaved_runs_save_exactly_when_nothing_was_saved_since_their_read(tmp_path, steps):
    """Three runs of one job object, their loads and saves interleaved at random: a save lands exactly when no
    other save landed since its run's last load (the truth kept here), and the stored state is the last landed."""
    states = duckdb_states(tmp_path / uuid.uuid4().hex)
    truth_version, truth_state, reads = 0, {}, {}
    for number, (action, run) in enumerate(steps):
        if action == "load":
            reads[run] = states.load("t", "j", None)
            assert (reads[run].version, reads[run].state) == (truth_version, truth_state)
            continue
        if run not in reads:
            continue
        state = {"step": number}
        if reads[run].version == truth_version:
            states.save("t", "j", None, state, reads[run])
            truth_version, truth_state = truth_version + 1, state
        else:
            with pytest.raises(StaleStateError):
                states.save("t", "j", None, state, reads[run])
        del reads[run]  # a run saves once
    final = states.load("t", "j", None)
    assert (final.version, final.state) == (truth_version, truth_state)


def test_a_state_file_of_the_earlier_default_place_is_taken_over_once(tmp_path, monkeypatch):
    """After an upgrade the job goes on from its file's mark; the first save moves it into the warehouse and
    removes the file, so a later change of the file is not read again."""
    monkeypatch.setenv("ETL_PLATFORM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ETL_PLATFORM_JOB_STATE", raising=False)
    legacy = legacy_root() / "acme" / "orders" / "public.orders.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({"cursor": "2024-05-01"}))
    states = job_states()  # the location's warehouse: DuckDB below ETL_PLATFORM_HOME
    assert isinstance(states, WarehouseJobStates)
    read = states.load("acme", "orders", "public.orders")
    assert (read.state, read.version) == ({"cursor": "2024-05-01"}, 0)
    states.save("acme", "orders", "public.orders", {"cursor": "2024-06-01"}, read)
    assert not legacy.exists()
    assert states.load("acme", "orders", "public.orders").state == {"cursor": "2024-06-01"}


def test_files_when_a_folder_is_named_and_on_spark(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_PLATFORM_JOB_STATE", str(tmp_path / "states"))
    named = job_states()
    assert isinstance(named, FileJobStates) and named.root == tmp_path / "states"
    named.save("acme", "orders", None, {"cursor": 1}, named.load("acme", "orders", None))
    assert json.loads((tmp_path / "states" / "acme" / "orders" / "_all.json").read_text()) == {"cursor": 1}
    monkeypatch.delenv("ETL_PLATFORM_JOB_STATE")
    monkeypatch.setenv("ETL_PLATFORM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ETL_PLATFORM_ENGINE", "spark")
    spark = job_states()  # no Spark session for a state: files below the home
    assert isinstance(spark, FileJobStates) and spark.root == legacy_root()
