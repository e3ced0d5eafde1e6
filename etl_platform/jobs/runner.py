"""Running a YAML job: for each object, reader → schema transform → writer, then the state.

The reader streams batches (a built-in source's Arrow batches, or a plugin's lists of dicts / Arrow); each batch is
mapped to the asset's schema by the ``SchemaTransformer`` (records that do not fit go to a quarantine file with
their reasons, never silently dropped); the good rows stream into one write of the target (a built-in destination
gets them as one stream of record batches, so an overwrite publishes all or nothing; a plugin writer gets
``write_batch`` per batch and ``commit_files`` once). Only after the target has committed is the incremental state
saved (and a queue's messages acknowledged): a failed run changes no state and starts again from the same mark.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from etl_platform import settings
from etl_platform.destinations.tables import table_of_records
from etl_platform.errors import ConfigurationError, EtlPlatformError, QueryError, invalid_configuration
from etl_platform.jobs.model import JobSpec, object_name
from etl_platform.jobs.state import JobStates, job_states
from etl_platform.plugins import IncrementalStateManager, PluginError
from etl_platform.sources.base import LINEAGE_COLUMNS
from etl_platform.transform import SchemaTransformer


@dataclass
class ObjectResult:
    object: str | None
    target: str = ""
    records_read: int = 0
    records_written: int = 0
    records_quarantined: int = 0
    batches: int = 0
    seconds: float = 0.0
    state_before: dict = field(default_factory=dict)
    state_after: dict = field(default_factory=dict)
    quarantine_file: str | None = None
    duplicate_keys: int | None = None  # rows whose key columns repeat an earlier row of this run (None: no keys)

    def summary(self) -> str:
        quarantined = f", {self.records_quarantined:,} quarantined ({self.quarantine_file})" \
            if self.records_quarantined else ""
        return (f"{self.object or 'all'}: {self.records_read:,} read, {self.records_written:,} written to "
                f"{self.target}{quarantined} in {self.seconds:.1f} s")


def quarantine_root() -> Path:
    return settings.platform_home() / "quarantine" / "jobs"


RUN_MODES = ("self_hosted", "cloud")


def check_run_mode(spec: JobSpec, mode: str) -> None:
    """Seed 003's ``--mode``. ``self_hosted`` (default): the machine's disk is kept between runs. ``cloud``: a worker
    whose disk goes with the run, so nothing the job needs later may live only there: a target on the local disk is
    refused, and ``ETL_PLATFORM_HOME`` (the job's quarantine files; on the DuckDB warehouse its file and the state in
    it) must be set explicitly, to a volume that outlives the worker. Checked before anything is read."""
    if mode not in RUN_MODES:
        raise ConfigurationError(f"--mode {mode!r} is not one of {', '.join(RUN_MODES)}")
    if mode != "cloud":
        return
    from etl_platform.destinations.registry import DESTINATIONS
    from etl_platform.destinations.stores import LocalStore

    if spec.target_type == "custom":
        base = plugin_output_base(spec)
        if "://" not in base:
            raise ConfigurationError(f"{spec.path}: --mode cloud: target.custom_writer writes below {base}, on this "
                                     "worker's disk, which is gone when the run ends; set target.connection."
                                     "output_base to an object store URI, or run with --mode self_hosted")
    elif issubclass(DESTINATIONS[spec.target_type].settings, LocalStore):
        raise ConfigurationError(f"{spec.path}: --mode cloud: target_connector {spec.target_type!r} writes to this "
                                 "worker's disk, which is gone when the run ends; use an object store or database "
                                 "target (s3, azure_blob, gcs, mongodb, ...), or run with --mode self_hosted")
    if not os.environ.get(settings.HOME_ENV):
        raise ConfigurationError(f"{spec.path}: --mode cloud: set {settings.HOME_ENV} to a volume that outlives the "
                                 "worker: the job's quarantine files are kept there (and, on the DuckDB warehouse, "
                                 "the warehouse file that keeps its incremental state: on the worker's own disk the "
                                 "next run would read everything again)")


def run_job(spec: JobSpec, full_refresh: bool = False, log: Callable[[str], None] = print,
            mode: str = "self_hosted", states: JobStates | None = None) -> list[ObjectResult]:
    """Run every object of ``spec``; raises on the first failure (the state of that object is left as it was).
    ``states``: where the incremental state is kept (default: ``job_states()``, the location's warehouse)."""
    check_run_mode(spec, mode)
    states = states or job_states()
    objects = (None,) if spec.source_type == "custom" else spec.objects
    return [run_object(spec, obj, full_refresh, log, states) for obj in objects]


def run_object(spec: JobSpec, obj: str | None, full_refresh: bool, log, states: JobStates | None = None
               ) -> ObjectResult:
    started = time.monotonic()
    result = ObjectResult(obj)
    states = states or job_states()
    saved = states.load(spec.tenant_id, spec.name, obj)
    result.state_before = {} if full_refresh or spec.reads_everything() else saved.state
    quarantine = _Quarantine(spec, obj)
    schema = spec.transform_schema()
    transformer = SchemaTransformer(schema) if schema else None
    extraction, batches, estimate, final_state = _extract(spec, obj, result.state_before, quarantine)
    key_columns = spec.key_columns()
    keys = _KeyCounter(key_columns)
    upsert_keys = key_columns if spec.write_mode() == "upsert" else []
    try:
        def good_batches() -> Iterator[pa.RecordBatch]:
            for batch in batches:  # Arrow tables, or a plugin's lists of dicts
                offset = result.records_read
                result.records_read += batch.num_rows if isinstance(batch, pa.Table) else len(batch)
                result.batches += 1
                refused_rows: set[int] = set()
                if transformer is not None:  # a list is typed by the schema before it is Arrow: a wrong value
                    table, refused = transformer.transform_table(batch)  # is one quarantined record, not a failure
                    quarantine.add(refused, offset)
                    refused_rows = set(refused["record"].to_pylist()) if refused.num_rows else set()
                else:
                    table = batch if isinstance(batch, pa.Table) else _records_table(spec, batch, result.batches - 1)
                if upsert_keys:  # the rows of `table` are the batch's records but the refused ones, in order
                    positions = [offset + i for i in range(result.records_read - offset) if i not in refused_rows]
                    table = _rows_with_keys(spec, table, upsert_keys, quarantine, positions)
                result.records_quarantined = quarantine.count
                keys.add(table)
                if estimate:
                    log(f"{obj or spec.name}: {result.records_read:,} of ~{estimate:,} records read")
                elif result.batches % 10 == 0:
                    log(f"{obj or spec.name}: {result.records_read:,} records read")
                yield from table.to_batches()

        result.target, result.records_written = _load(spec, obj, good_batches(), log)
        result.records_quarantined = quarantine.count
        result.quarantine_file = quarantine.close()
        result.duplicate_keys = keys.duplicates()
        result.state_after = final_state()
        states.save(spec.tenant_id, spec.name, obj, result.state_after, saved)
        if extraction is not None:
            extraction.acknowledge()
    finally:
        quarantine.close()
        keys.close()
        if extraction is not None:
            extraction.close()
    result.seconds = time.monotonic() - started
    return result  # the caller says result.summary() where it belongs (the CLI's stdout, the step's log)


# ---------------------------------------------------------------- reading


def _extract(spec: JobSpec, obj: str | None, state: dict, quarantine: _Quarantine):
    """``(extraction to acknowledge/close or None, iterator of Arrow tables, size estimate, final state getter)``."""
    if spec.source_type == "custom":
        manager = IncrementalStateManager(state)
        try:
            reader = spec.reader_class(spec.source)
            estimate = reader.get_total_records_estimate()
        except Exception as error:
            raise PluginError(f"{spec.path}: source.custom_reader {spec.reader_class.__name__} failed to start: "
                              f"{type(error).__name__}: {error}") from error
        return None, _plugin_tables(spec, reader, manager), estimate, manager.get_state
    source = build_source(spec, obj)
    extraction = source.extract(state or None)
    return extraction, _source_tables(extraction, quarantine, source.landing_plan().part_column), None, \
        lambda: dict(extraction.state)


def build_source(spec: JobSpec, obj: str | None):
    """The built-in reader of ``spec`` for ``obj``, from the job's connection, credentials, engine options,
    query and incremental settings; a key the reader does not know is named with its YAML path."""
    from etl_platform.sources import SOURCES

    source_class = SOURCES[spec.source_type]
    fields = set(source_class.model_fields)
    config: dict[str, Any] = {}
    for part in ("connection", "credentials"):
        for key, value in (spec.source.get(part) or {}).items():
            if key not in fields:
                raise ConfigurationError(f"{spec.path}: source.{part}.{key} is not a setting of the "
                                         f"{spec.source_type} reader; it takes {', '.join(sorted(fields))}")
            config[key] = value
    options = ((spec.source.get("engine") or {}).get("options") or {})
    for key, value in options.items():
        if key not in fields:
            raise ConfigurationError(f"{spec.path}: source.engine.options.{key} is not a setting of the "
                                     f"{spec.source_type} reader")
        config[key] = value
    if obj is not None:
        place = source_class.object_setting
        if place is None:
            raise ConfigurationError(f"{spec.path}: source.tables/objects: the {spec.source_type} reader reads no "
                                     "named tables; remove them")
        config[place] = obj
    if spec.source.get("query"):
        config["query"] = spec.source["query"]
    incremental = spec.source.get("incremental") or {}
    if incremental:
        cursor = source_class.cursor_setting
        if cursor is None:
            raise ConfigurationError(f"{spec.path}: source.incremental: the {spec.source_type} reader has no "
                                     "incremental reads")
        config[cursor] = incremental["cursor_field"]
        for key in ("lookback", "initial_value"):
            if key in incremental and key in fields:
                config[key] = incremental[key]
    try:
        return source_class(**config)
    except Exception as error:
        raise invalid_configuration(f"{spec.path}: source ({spec.source_type})", error) from None


def _source_tables(extraction, quarantine: _Quarantine, part_column: str | None) -> Iterator[pa.Table]:
    written_parts: set[str] = set()  # the files whose rows went to the target (replace_by_file sources)
    for batch in extraction:
        if batch.unreadable_part is not None and batch.unreadable_part in written_parts:
            raise QueryError(f"{batch.unreadable_part}: {batch.rejected[0].reason}, after some of its rows were "
                             "written to the target; the run fails and saves no state: fix or remove the file and "
                             "run again")
        for rejected in batch.rejected:  # a record (or a whole file) the reader could not read: quarantined, the
            quarantine.write({"record": rejected.position, "reasons": [rejected.reason],  # run goes on
                              "value": rejected.record})
        if batch.data is not None:
            table = pa.Table.from_batches([batch.data])
            if part_column in table.column_names and table.num_rows:
                written_parts.update(table[part_column].unique().to_pylist())
            yield table.drop_columns([c for c in LINEAGE_COLUMNS if c in table.column_names])


def _rows_with_keys(spec: JobSpec, table: pa.Table, keys: list[str], quarantine: _Quarantine,
                    positions: list[int]) -> pa.Table:
    """An upsert's rows that have every key column: a row with none in one cannot be matched, so it is quarantined
    (naming the column; ``positions``: each row's place in the whole read) and the rest are written; a key column
    the data does not have is the job's error."""
    import pyarrow.compute as pc

    missing = [k for k in keys if k not in table.column_names]
    if missing:
        raise ConfigurationError(f"{spec.path}: target.id_columns: {', '.join(missing)} "
                                 f"{'is not a column' if len(missing) == 1 else 'are not columns'} of the records "
                                 f"(they have {', '.join(table.column_names)})")
    keyless = None
    for key in keys:
        nulls = pc.is_null(table[key])
        keyless = nulls if keyless is None else pc.or_(keyless, nulls)
    if not pc.any(keyless).as_py():
        return table
    for index, row in zip(pc.indices_nonzero(keyless).to_pylist(), table.filter(keyless).to_pylist()):
        empty = [k for k in keys if row[k] is None]
        quarantine.write({"record": positions[index], "value": row, "reasons": [
            f"{k}: no value: the upsert matches records by target.id_columns ({', '.join(keys)})" for k in empty]})
    return table.filter(pc.invert(keyless))


def _plugin_tables(spec: JobSpec, reader, manager) -> Iterator[pa.Table | list]:
    name = spec.reader_class.__name__
    try:
        for number, batch in enumerate(reader.extract(manager)):
            if isinstance(batch, pa.RecordBatch):
                yield pa.Table.from_batches([batch])
            elif isinstance(batch, pa.Table):
                yield batch
            elif isinstance(batch, list):
                bad = next((i for i, record in enumerate(batch) if not isinstance(record, dict)), None)
                if bad is not None:  # the reader's defect, not a record to quarantine
                    raise PluginError(f"{spec.path}: source.custom_reader {name}: record {bad} of batch {number} "
                                      f"is a {type(batch[bad]).__name__}, not a dict")
                if batch:
                    yield batch
            else:
                raise PluginError(f"{spec.path}: source.custom_reader {name} yielded a {type(batch).__name__} as "
                                  f"batch {number}; yield lists of dicts or pyarrow Tables")
    except EtlPlatformError:
        raise
    except Exception as error:
        raise PluginError(f"{spec.path}: source.custom_reader {name} failed: {type(error).__name__}: {error}") \
            from error


def _records_table(spec: JobSpec, records: list, number: int) -> pa.Table:
    """A plugin's batch of dicts as Arrow, for a job whose asset declares no schema (nothing to type it by)."""
    try:
        return table_of_records(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as error:
        raise PluginError(f"{spec.path}: source.custom_reader {spec.reader_class.__name__}: batch {number} cannot "
                          f"be typed ({str(error).splitlines()[0]}); declare the fields in asset.schema, and records "
                          "that do not fit it are quarantined instead") from error


# ---------------------------------------------------------------- writing


def _load(spec: JobSpec, obj: str | None, batches: Iterator[pa.RecordBatch], log) -> tuple[str, int]:
    first = next(batches, None)
    if first is None and spec.write_mode() != "overwrite":
        log(f"{obj or spec.name}: no records to write")
        return "(nothing written)", 0
    if first is None:  # the source has no records now: the overwritten target has none either
        log(f"{obj or spec.name}: no records: the target is emptied")
        stream = pa.RecordBatchReader.from_batches(pa.schema([]), [])
    else:
        stream = pa.RecordBatchReader.from_batches(first.schema, _same_types(first, batches))
    if spec.target_type == "custom":
        return _plugin_write(spec, obj, stream)
    return _builtin_write(spec, obj, stream, log)


def _same_types(first: pa.RecordBatch, rest) -> Iterator[pa.RecordBatch]:
    """Later batches given the first one's types where they differ only by NULL-typed columns (a plugin's batch of
    records with no value in a column)."""
    yield first
    for batch in rest:
        if not batch.schema.equals(first.schema):
            try:
                batch = batch.cast(first.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
                pass  # the stream names the columns that differ
        yield batch


def _object_path(spec: JobSpec, obj: str | None, base: str) -> str:
    """Where ``obj`` is written below ``base``: ``base/<object>`` when the job reads several objects (each its own
    folder, else each replaced the one before), else ``base`` itself."""
    name = spec.object_name(obj)
    return f"{base.rstrip('/')}/{name}" if name is not None else base


def _dataset_path(spec: JobSpec, obj: str | None) -> str:
    return _object_path(spec, obj, spec.target.get("path") or spec.name)


def _builtin_write(spec: JobSpec, obj: str | None, stream: pa.RecordBatchReader, log) -> tuple[str, int]:
    from etl_platform.destinations import Dataset
    from etl_platform.destinations.options import WriteOptions
    from etl_platform.destinations.registry import DESTINATIONS

    kind = DESTINATIONS[spec.target_type]
    target = spec.target
    config = {**(target.get("connection") or {}), **(target.get("credentials") or {})}
    mode = spec.write_mode()
    keys = spec.key_columns()
    if kind.is_file_store:
        store = kind.build(config, f"{spec.path}: target.connection")
        options = WriteOptions.from_mapping({
            "format": target.get("format"), "compression": target.get("compression"),
            "partition_by": target.get("partitioning") or target.get("partition_by"), "mode": mode,
            "id_columns": keys, "modification_column": target.get("modification_column"),
            "upsert_method": target.get("upsert_method")}, "csv" if spec.target_type == "csv" else "parquet")
        dataset = Dataset(store, _dataset_path(spec, obj), options.file_format, options.partition_by)
        result = dataset.write(stream, mode, merge=options.merge)
        return store.uri(dataset.location), result.records_written
    if kind.place:
        config[kind.place] = kind.place_of(config, object_name(obj) if obj is not None else spec.name)
    destination = kind.build(config, f"{spec.path}: target.connection")
    result = destination.write(stream, mode, keys, log=log)
    return result.target, result.records_written


def plugin_output_base(spec: JobSpec) -> str:
    """Where a custom writer writes: ``target.connection.output_base``, ``target.path``, else
    ``$ETL_PLATFORM_HOME/output/<tenant>/<job>``."""
    return str((spec.target.get("connection") or {}).get("output_base") or spec.target.get("path")
               or settings.platform_home() / "output" / spec.tenant_id / spec.name)


def _plugin_write(spec: JobSpec, obj: str | None, stream: pa.RecordBatchReader) -> tuple[str, int]:
    name = spec.writer_class.__name__
    output_base = _object_path(spec, obj, plugin_output_base(spec))
    try:
        writer = spec.writer_class(spec.asset, spec.target, output_base)
        metadata, written = [], 0
        for counter, batch in enumerate(stream):
            records = batch.to_pylist()
            metadata += writer.write_batch(records, counter) or []
            written += len(records)
        writer.commit_files(metadata)
    except EtlPlatformError:
        raise
    except Exception as error:
        raise PluginError(f"{spec.path}: target.custom_writer {name} failed: {type(error).__name__}: {error}") \
            from error
    return output_base, written


class _KeyCounter:
    """The key columns of every row read, in an in-memory DuckDB table (spilling to disk if large), to count the
    rows whose key repeats: the asset's ``unique`` rule, checked on what the source delivered."""

    def __init__(self, columns: list[str]):
        import duckdb

        self.columns = columns
        self.conn = duckdb.connect() if columns else None
        self.created = False

    def add(self, table: pa.Table) -> None:
        if self.conn is None or not all(c in table.column_names for c in self.columns):
            return
        keys = table.select(self.columns)
        self.conn.register("batch_keys", keys)
        if not self.created:
            self.conn.execute("CREATE TABLE keys AS SELECT * FROM batch_keys")
            self.created = True
        else:
            self.conn.execute("INSERT INTO keys SELECT * FROM batch_keys")
        self.conn.unregister("batch_keys")

    def duplicates(self) -> int | None:
        if self.conn is None:
            return None
        if not self.created:
            return 0
        columns = ", ".join(f'"{c}"' for c in self.columns)
        return self.conn.execute(f"SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT {columns} FROM keys)) "
                                 "FROM keys").fetchone()[0]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---------------------------------------------------------------- quarantine


class _Quarantine:
    """Refused records of one run, as JSON lines under ``$ETL_PLATFORM_HOME/quarantine/jobs/<tenant>/<job>/``."""

    def __init__(self, spec: JobSpec, obj: str | None):
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        self.path = quarantine_root() / spec.tenant_id / spec.name / f"{obj or '_all'}-{stamp}.jsonl"
        self.file = None
        self.count = 0

    def add(self, refused: pa.Table, offset: int) -> None:
        """The transformer's refused rows; ``record`` made a position in the whole read."""
        for row in refused.to_pylist():
            self.write({"record": offset + row["record"], "reasons": row["reasons"], "value": json.loads(row["value"])})

    def write(self, entry: dict) -> None:
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a", encoding="utf-8")
        self.file.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
        self.count += 1

    def close(self) -> str | None:
        if self.file is not None:
            self.file.close()
            self.file = None
        return str(self.path) if self.count else None
