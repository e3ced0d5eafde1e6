"""Publishing warehouse tables to the destinations, by configuration only.

``$ETL_PLATFORM_EXPORTS`` names a YAML file; each entry becomes an asset ``exports/<name>`` below the
table's asset, in the group ``video_analytics_exports`` (part of the pipeline job):

    exports:
      - name: viewing_fact_s3              # optional; default <destination>_<table name>
        table: gold.viewing_fact
        destination: s3                     # local, csv, s3, azure_blob, gcs
        config:                             # the store's settings; ${VAR} reads the environment
          bucket: analytics
          prefix: exports
          endpoint_url: ${S3_ENDPOINT_URL}
          aws_access_key_id: ${AWS_ACCESS_KEY_ID}
          aws_secret_access_key: ${AWS_SECRET_ACCESS_KEY}
        format: parquet                     # parquet, jsonl, json, csv
        compression: zstd
        partition_by: [view_date]
        mode: overwrite                     # overwrite, append, upsert (with id_columns, ...)

The dataset lands at ``<bucket>/<prefix>/<schema>/<table>/``. Values are substituted when the
definitions load; a missing variable is an error naming it and the file, and secret values never
appear in logs or metadata.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import yaml

from etl_platform.config_files import expand_env
from etl_platform.destinations import STORES, Dataset
from etl_platform.destinations.errors import ConfigurationError
from etl_platform.destinations.io_managers import write_metadata
from etl_platform.destinations.options import KEYS as WRITE_OPTION_KEYS
from etl_platform.destinations.options import WriteOptions
from etl_platform.warehouse import DuckDBWarehouse
from etl_platform.warehouse.arrow import arrow_table

EXPORTS_ENV = "ETL_PLATFORM_EXPORTS"
GROUP = "video_analytics_exports"
ENTRY_KEYS = {"name", "table", "destination", "config", *WRITE_OPTION_KEYS}


@dataclass(frozen=True)
class ExportSpec:
    name: str
    table: str
    destination: str
    config: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)


def load_export_specs(path: Path) -> list[ExportSpec]:
    if not path.is_file():
        raise ConfigurationError(f"{EXPORTS_ENV}: export file {path} does not exist")
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = document.get("exports") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ConfigurationError(f"{path}: expected a top-level 'exports:' list")
    specs = []
    for number, entry in enumerate(entries, start=1):
        where = f"{path}, export {number}"
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where}: expected a mapping")
        unknown = sorted(set(entry) - ENTRY_KEYS)
        if unknown:
            raise ConfigurationError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(sorted(ENTRY_KEYS))}")
        for required in ("table", "destination"):
            if required not in entry:
                raise ConfigurationError(f"{where}: '{required}' is required")
        if entry["destination"] not in STORES:
            raise ConfigurationError(f"{where}: destination {entry['destination']!r} is not one of "
                                     f"{', '.join(sorted(STORES))}")
        if not re.fullmatch(r"(bronze|silver|gold)\.[a-z_]+", entry["table"]):
            raise ConfigurationError(f"{where}: table {entry['table']!r} is not a warehouse table like gold.viewing_fact")
        config = expand_env(entry.get("config") or {}, where, "config", ConfigurationError)
        options = {k: v for k, v in entry.items() if k not in ("name", "table", "destination", "config")}
        name = entry.get("name") or f"{entry['destination']}_{entry['table'].split('.')[1]}"
        specs.append(ExportSpec(name, entry["table"], entry["destination"], config, options))
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(f"{path}: export names must be unique; repeated: {duplicates}")
    return specs


def build_export_asset(spec: ExportSpec) -> dg.AssetsDefinition:
    store = STORES[spec.destination](**spec.config)  # validated now, so a bad entry fails at load time
    options = WriteOptions.from_mapping(spec.options, "csv" if spec.destination == "csv" else "parquet")
    file_format, mode = options.file_format, options.mode
    schema, table = spec.table.split(".")

    @dg.asset(
        key=["exports", spec.name],
        deps=[dg.AssetKey([schema, table])],
        group_name=GROUP,
        kinds={spec.destination if spec.destination != "azure_blob" else "azure", file_format.format},
        owners=["team:data-platform"],
        description=f"`{spec.table}` published to {spec.destination} as {file_format.format}"
        + (f", partitioned by {', '.join(options.partition_by)}" if options.partition_by else "")
        + f" ({mode}).",
    )
    def export_asset(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
        with warehouse.connect() as conn:
            data = arrow_table(conn.sql(f"SELECT * FROM {spec.table}"))
        dataset = Dataset(store, f"{schema}/{table}", file_format, options.partition_by)
        result = dataset.write(data, mode, merge=options.merge)
        context.log.info(f"{spec.table}: {result.records_written:,} rows in {result.files} file(s) "
                         f"to {store.uri(dataset.location)} in {result.seconds:.1f} s")
        return dg.MaterializeResult(metadata=write_metadata(result, dataset, data))

    return export_asset


def build_export_assets() -> list[dg.AssetsDefinition]:
    path = os.environ.get(EXPORTS_ENV)
    return [build_export_asset(spec) for spec in load_export_specs(Path(path))] if path else []
