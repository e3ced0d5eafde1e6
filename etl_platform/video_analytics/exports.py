"""Publishing warehouse tables to the destinations, by configuration only.

``$ETL_PLATFORM_EXPORTS`` names a YAML file; each entry becomes an asset ``exports/<name>`` below the
table's asset, in the group ``video_analytics_exports`` (part of the pipeline job):

    exports:
      - name: viewing_fact_s3              # optional; default <destination>_<table name>
        table: gold.viewing_fact
        destination: s3                     # local, csv, s3, azure_blob, gcs, mongodb, opensearch, solr, cassandra
        config:                             # the destination's settings; ${VAR} reads the environment
          bucket: analytics
          prefix: exports
          endpoint_url: ${S3_ENDPOINT_URL}
          aws_access_key_id: ${AWS_ACCESS_KEY_ID}
          aws_secret_access_key: ${AWS_SECRET_ACCESS_KEY}
        format: parquet                     # delta (default: a Delta table, one commit per run), or plain files:
                                            # parquet, jsonl, json, csv (the csv destination: csv)
        compression: zstd
        partition_by: [view_date]
        mode: overwrite                     # overwrite, append, upsert (with id_columns, ...)

      - table: gold.user_engagement
        destination: mongodb                # databases and search engines: their settings, mode and id_columns
        config: {uri: "${MONGO_URI}", database: analytics}   # collection: default the table's name
        mode: upsert
        id_columns: [user_id]

A file dataset lands at ``<bucket>/<prefix>/<schema>/<table>/``; a collection, index or Cassandra table is named
after the warehouse table unless the config names it. The table streams out of the warehouse in batches
(``batch_rows``, default 100,000): memory holds a batch, not the table (an upsert into files is the exception:
its merge holds the dataset).

Every export is idempotent unless asked otherwise, because the exports run in the scheduled job: a file export
overwrites its dataset by default (a Delta table unless ``format`` asks for plain files: one commit, so readers of
the export never see half of a run's files); a database or search-engine export upserts by ``id_columns`` when they are
given and otherwise overwrites (MongoDB: a collection renamed over the old; OpenSearch: an alias swap; Solr: a
delete and the new documents in one commit; Cassandra: truncate, then insert). ``mode: append`` adds another copy
of the table on every run, and says so in the asset's description.

``${VAR}`` is resolved when the export runs, not when the definitions load: a variable that is not set fails
that export's step naming the variable and the file, and every other asset loads and runs. The file's shape
(keys, destination, table) is checked at load. Secret values never appear in logs or metadata.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import yaml

from etl_platform.config_files import VARIABLE, expand_env
from etl_platform.destinations import Dataset
from etl_platform.destinations.errors import ConfigurationError
from etl_platform.destinations.io_managers import write_metadata
from etl_platform.destinations.options import KEYS as FILE_OPTION_KEYS
from etl_platform.destinations.options import WriteOptions
from etl_platform.destinations.registry import DESTINATIONS, DestinationType
from etl_platform.destinations.target_io_manager import target_write_metadata
from etl_platform.errors import EtlPlatformError
from etl_platform.retries import step_failure, write_retry_policy
from etl_platform.warehouse import WAREHOUSE_POOL, Warehouse

EXPORTS_ENV = "ETL_PLATFORM_EXPORTS"
GROUP = "video_analytics_exports"
TARGET_OPTION_KEYS = {"mode", "id_columns"}  # what a database or search-engine export may set beside its config
ENTRY_KEYS = {"name", "table", "destination", "config", "batch_rows", *FILE_OPTION_KEYS}
DEFAULT_BATCH_ROWS = 100_000


@dataclass(frozen=True)
class ExportSpec:
    name: str
    table: str
    destination: str
    config: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    batch_rows: int = DEFAULT_BATCH_ROWS

    @property
    def kind(self) -> DestinationType:
        return DESTINATIONS[self.destination]


def load_export_specs(path: Path) -> list[ExportSpec]:
    if not path.is_file():
        raise ConfigurationError(f"{EXPORTS_ENV}: export file {path} does not exist")
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = document.get("exports") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ConfigurationError(f"{path}: expected a top-level 'exports:' list")
    return parse_export_entries(entries, str(path))


def parse_export_entries(entries: list, where: str) -> list[ExportSpec]:
    """The entries of an exports list (from a file or a defs.yaml, ``where``) as specs, checked."""
    specs = [_spec(entry, f"{where}, export {number}") for number, entry in enumerate(entries, start=1)]
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(f"{where}: export names must be unique; repeated: {duplicates}")
    return specs


def _spec(entry, where: str) -> ExportSpec:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where}: expected a mapping")
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise ConfigurationError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(sorted(ENTRY_KEYS))}")
    for required in ("table", "destination"):
        if required not in entry:
            raise ConfigurationError(f"{where}: '{required}' is required")
    if entry["destination"] not in DESTINATIONS:
        raise ConfigurationError(f"{where}: destination {entry['destination']!r} is not one of "
                                 f"{', '.join(sorted(DESTINATIONS))}")
    if not re.fullmatch(r"(bronze|silver|gold)\.[a-z_]+", entry["table"]):
        raise ConfigurationError(f"{where}: table {entry['table']!r} is not a warehouse table like gold.viewing_fact")
    batch_rows = entry.get("batch_rows", DEFAULT_BATCH_ROWS)
    if not isinstance(batch_rows, int) or isinstance(batch_rows, bool) or batch_rows < 1:
        raise ConfigurationError(f"{where}: batch_rows {batch_rows!r} must be a positive whole number")
    kind = DESTINATIONS[entry["destination"]]
    options = {k: v for k, v in entry.items() if k not in ("name", "table", "destination", "config", "batch_rows")}
    if not kind.is_file_store and set(options) - TARGET_OPTION_KEYS:
        raise ConfigurationError(f"{where}: {sorted(set(options) - TARGET_OPTION_KEYS)} are file settings; a "
                                 f"{kind.name} export takes only {sorted(TARGET_OPTION_KEYS)} beside its config")
    if not isinstance(entry.get("config") or {}, dict):
        raise ConfigurationError(f"{where}: config must be a mapping of the destination's settings")
    config = dict(entry.get("config") or {})  # ${VAR} stays until the export runs (resolve_destination)
    if kind.place:
        config.setdefault(kind.place, entry["table"].split(".")[1])
    if not kind.is_file_store and "mode" not in options:  # idempotent by default: the exports run on a schedule
        options["mode"] = "upsert" if options.get("id_columns") else "overwrite"
    name = entry.get("name") or f"{entry['destination']}_{entry['table'].split('.')[1]}"
    return ExportSpec(name, entry["table"], entry["destination"], config, options, batch_rows)


def resolve_destination(spec: ExportSpec):
    """The export's store or target, its ``${VAR}`` taken from the environment now (at run time)."""
    where = f"export {spec.name}"
    return spec.kind.build(expand_env(spec.config, f"{where} ({os.environ.get(EXPORTS_ENV)})", "config",
                                      ConfigurationError), where)


def _check_shape(spec: ExportSpec) -> None:
    """At load: the config's keys (unknown, missing) without resolving a variable; values with no ``${VAR}`` are
    validated whole when every value is literal."""
    where = f"export {spec.name}"
    spec.kind.check_keys(spec.config, where)
    if not any(VARIABLE.search(str(value)) for value in spec.config.values()):
        spec.kind.build(spec.config, where)


def build_export_asset(spec: ExportSpec) -> dg.AssetsDefinition:
    _check_shape(spec)
    if spec.kind.is_file_store:
        options = WriteOptions.from_mapping(spec.options, "csv" if spec.destination == "csv" else "delta")
        file_kind = "deltalake" if options.file_format.is_table else options.file_format.format
        mode, kinds = options.mode, {spec.kind.name if spec.destination != "azure_blob" else "azure", file_kind}
        shape = f" as {options.file_format.format}" + (
            f", partitioned by {', '.join(options.partition_by)}" if options.partition_by else "")
    else:
        options, mode, kinds, shape = None, spec.options["mode"], {spec.destination}, ""
    schema, table = spec.table.split(".")

    @dg.asset(
        key=["exports", spec.name],
        deps=[dg.AssetKey([schema, table])],
        group_name=GROUP,
        kinds=kinds,
        owners=["team:data-platform"],
        description=f"`{spec.table}` published to {spec.destination}{shape} ({mode}"
                    f"{': every run adds another copy' if mode == 'append' else ''}).",
        retry_policy=write_retry_policy(mode),  # overwrite and upsert only: a retried append could double rows
        pool=WAREHOUSE_POOL,
        automation_condition=dg.AutomationCondition.eager(),  # after its table is updated (the automation sensor)
    )
    def export_asset(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        try:
            destination = resolve_destination(spec)
        except EtlPlatformError as error:
            raise step_failure(error, {"export": spec.name}) from error
        with warehouse.connect() as conn:
            rows = conn.arrow_reader(f"SELECT * FROM {spec.table}", spec.batch_rows)
            try:
                if options is not None:
                    dataset = Dataset(destination, f"{schema}/{table}", options.file_format, options.partition_by)
                    result = dataset.write(rows, mode, merge=options.merge)
                    target, metadata = destination.uri(dataset.location), write_metadata(result, dataset)
                else:
                    result = destination.write(rows, mode, spec.options.get("id_columns") or (),
                                               log=context.log.info)
                    target, metadata = result.target, target_write_metadata(result, mode)
            except EtlPlatformError as error:  # retried (the step's policy) only when the store did not answer
                raise step_failure(error, {"export": spec.name}) from error
        context.log.info(f"{spec.table}: {result.records_written:,} rows to {target} in {result.seconds:.1f} s")
        return dg.MaterializeResult(metadata=metadata)

    return export_asset


def build_export_assets() -> list[dg.AssetsDefinition]:
    path = os.environ.get(EXPORTS_ENV)
    return [build_export_asset(spec) for spec in load_export_specs(Path(path))] if path else []
