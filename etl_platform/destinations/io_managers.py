"""Datasets as Dagster IO managers: one implementation, each store differing only in how it connects.

    defs = dg.Definitions(assets=[...], resources={"io_manager": S3DatasetIOManager(
        bucket="analytics", prefix="lake", endpoint_url=dg.EnvVar("S3_ENDPOINT"),
        aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"), aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
        partition_by=["view_date"])})    # Delta tables by default; format="parquet" for plain files

An asset overrides the manager's settings with definition metadata: ``etl_platform/partition_by``,
``etl_platform/write_mode``, ``etl_platform/id_columns``, ``etl_platform/modification_column``,
``etl_platform/upsert_method``, ``etl_platform/upsert_backend``, ``etl_platform/format``.
A partitioned asset writes each Dagster partition as the table partition (plain files: the folder)
``<partition_column>=<key>``; ``overwrite`` then replaces just that partition, so re-running it is idempotent.

By default (``format="delta"``) each asset is a Delta Lake table and every write one commit (readers see the
version before or after it, never a mix); its materialization records the ``version`` committed, and a downstream
asset reads an earlier one with input metadata: ``dg.AssetIn(metadata={"etl_platform/version": 3})`` or
``{"etl_platform/as_of": "2026-12-01T00:00:00Z"}`` (time travel). ``format="parquet"`` (or jsonl, json, csv)
writes plain files instead, with the weaker guarantees docs/destinations.md states.
"""

from typing import Any, ClassVar

import dagster as dg
from pydantic import Field

from etl_platform.destinations.dataset import Dataset, WriteResult
from etl_platform.destinations.errors import ConfigurationError
from etl_platform.destinations.options import KEYS, WriteOptions
from etl_platform.destinations.stores import (
    AzureBlobStore,
    GCSStore,
    LocalStore,
    S3Store,
    Store,
    options_from_dagster_resource,
)
from etl_platform.destinations.tables import from_arrow

OVERRIDE_PREFIX = "etl_platform/"


class DatasetIOManager(dg.ConfigurableIOManager):
    """Base class: datasets of files on a store. Subclasses only say how to connect (``store()``)."""

    format: str = Field(default="delta", description="delta (default: a Delta Lake table, every write one commit, "
                                                     "time travel), or plain files: parquet, jsonl, json, csv.")
    compression: str | None = Field(default=None, description="parquet: snappy (default), zstd, gzip, none; "
                                                              "text formats: none (default), gzip, zstd.")
    csv_delimiter: str = ","
    csv_header: bool = True
    partition_by: list[str] = Field(default_factory=list, description="Columns to partition by, Hive style.")
    write_mode: str = Field(default="overwrite", description="append, overwrite or upsert.")
    id_columns: list[str] = Field(default_factory=list, description="Key columns of upsert.")
    modification_column: str | None = None
    upsert_method: str = Field(default="by_id", description="by_id or by_id_and_modification.")
    upsert_backend: str = Field(default="pandas", description="pandas or pyspark.")
    partition_column: str = Field(default="partition", description="Folder name of a Dagster partition key.")
    storage_resource: dg.ConfigurableResource | None = Field(
        default=None, description="Dagster's own S3Resource, GCSResource, AzureBlobStorageResource or ADLS2Resource: "
                                  "its connection settings are used instead of repeating them here.")

    store_class: ClassVar[type[Store]]

    def store(self) -> Store:
        """The store, built from the fields of the same names (each subclass declares its store's fields)."""
        fields = self.store_class.model_fields
        settings = {(info.alias or name): getattr(self, info.alias or name)
                    for name, info in fields.items() if hasattr(self, info.alias or name)}
        if self.storage_resource is not None:
            settings.update(options_from_dagster_resource(self.storage_resource))
        return self.store_class(**settings)

    # ---------------------------------------------------------------- Dagster hooks

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        options = self._options(context)
        dataset = self._dataset(context, options)
        result = dataset.write(obj, options.mode, self._partition(context), merge=options.merge)
        context.log.info(f"wrote {result.records_written:,} records in {result.files} file(s), "
                         f"{result.size_bytes:,} bytes, to {dataset.store.uri(dataset.location)}")
        context.add_output_metadata(write_metadata(result, dataset))

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        dataset = self._dataset(upstream, self._options(upstream))
        wanted = context.definition_metadata or {}
        table = dataset.read(self._partition(context), version=wanted.get(OVERRIDE_PREFIX + "version"),
                             as_of=wanted.get(OVERRIDE_PREFIX + "as_of"))
        if table is None:
            raise dg.Failure(f"No data at {dataset.store.uri(dataset.scope(self._partition(context)))}: "
                             f"materialize {context.asset_key.to_user_string()} first")
        return from_arrow(table, context.dagster_type.typing_type)

    # ---------------------------------------------------------------- helpers

    def _options(self, context) -> WriteOptions:
        """The manager's settings, each overridable by the asset's ``etl_platform/<name>`` metadata."""
        metadata = (context.definition_metadata or {}) if context is not None else {}
        settings = {name: metadata.get(OVERRIDE_PREFIX + name, getattr(self, name)) for name in KEYS - {"mode"}}
        settings["mode"] = metadata.get(OVERRIDE_PREFIX + "write_mode", self.write_mode)
        return WriteOptions.from_mapping(settings)

    def _dataset(self, context, options: WriteOptions) -> Dataset:
        return Dataset(self.store(), "/".join(context.asset_key.path), options.file_format, options.partition_by)

    def _partition(self, context) -> dict[str, str] | None:
        if not context.has_asset_partitions:
            return None
        keys = context.asset_partition_keys
        if len(keys) != 1:
            raise ConfigurationError(f"{type(self).__name__} writes and reads one partition at a time, got {len(keys)}")
        return {self.partition_column: keys[0]}


def write_metadata(result: WriteResult, dataset: Dataset) -> dict:
    return {
        "dagster/uri": dg.MetadataValue.path(dataset.store.uri(dataset.location)),
        "uris": dg.MetadataValue.json(result.uris[:100]),
        "records_written": dg.MetadataValue.int(result.records_written),
        "dagster/row_count": dg.MetadataValue.int(result.records_written),
        "bytes": dg.MetadataValue.int(result.size_bytes),
        "files": dg.MetadataValue.int(result.files),
        "format": dataset.file_format.format,
        **({"version": dg.MetadataValue.int(result.version)} if result.version is not None else {}),
        "compression": dataset.file_format.codec,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in result.schema]
        ),
    }


class LocalDatasetIOManager(DatasetIOManager):
    """Datasets below a local folder (also the ``csv`` destination with ``format='csv'``)."""

    store_class: ClassVar[type[Store]] = LocalStore
    base_path: str
    prefix: str = ""


class S3DatasetIOManager(DatasetIOManager):
    """Datasets in an S3 bucket, or an S3-compatible store through ``endpoint_url``."""

    store_class: ClassVar[type[Store]] = S3Store
    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = Field(default=None, repr=False)  # a secret: kept out of repr and logs
    aws_session_token: str | None = Field(default=None, repr=False)  # a secret: kept out of repr and logs
    retries: int = 5
    connect_timeout: float = 10.0


class AzureBlobDatasetIOManager(DatasetIOManager):
    """Datasets in an Azure Blob container (connection string, or account name and key)."""

    store_class: ClassVar[type[Store]] = AzureBlobStore
    container: str
    prefix: str = ""
    connection_string: str | None = Field(default=None, repr=False)  # a secret: kept out of repr and logs
    account_name: str | None = None
    account_key: str | None = Field(default=None, repr=False)  # a secret: kept out of repr and logs


class GCSDatasetIOManager(DatasetIOManager):
    """Datasets in a Google Cloud Storage bucket (``endpoint_url`` or $STORAGE_EMULATOR_HOST for emulators)."""

    store_class: ClassVar[type[Store]] = GCSStore
    bucket: str
    prefix: str = ""
    project: str | None = None
    endpoint_url: str | None = None
    token: str | None = None
