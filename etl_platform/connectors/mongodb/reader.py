"""MongoDB: a collection read with ``find`` (filter, projection) or an aggregation pipeline, in batches.

Each document lands as ``_id`` (text) and ``_record`` (relaxed Extended JSON: dates as ISO text, Decimal128 as
numbers, ObjectIds as ``{"$oid": ...}``); silver SQL picks fields with ``_record->>'$.field'``. With ``columns``
(dotted path → SQL type) the documents become typed columns instead: nested documents as Arrow structs
(``STRUCT(city VARCHAR, zip VARCHAR)``), arrays as lists (``VARCHAR[]``), inner fields flattened by their path
(``address.city`` → column ``address_city``); a document whose value does not fit its column's type is
quarantined with the path and the value, the others land. The server's
cursor hands over ``batch_size`` documents at a time, so memory does not grow with the collection.
``cursor_field`` makes reads incremental (``{field: {$gte: mark}}``, sorted by it); documents re-read are
recognised by ``_id`` and replace their older version in bronze.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import Field

from etl_platform.connectors.mongodb.connection import MongoConnection, describe_mongo, mongo_client
from etl_platform.errors import ClientConnectionError, ConfigurationError, CredentialsRefusedError, QueryError
from etl_platform.extras import require
from etl_platform.sources.base import (
    POSITION_COLUMN,
    Extraction,
    LandingPlan,
    Rejected,
    Source,
    SourceBatch,
    decode_value,
    encode_value,
    first_line,
    minus_lookback,
)

ID_COLUMN = "_id"
RECORD_COLUMN = "_record"


class MongoSource(Source, MongoConnection):
    """Documents of a MongoDB collection (connection fields: ``MongoConnection``)."""

    object_setting: ClassVar[str | None] = "collection"
    cursor_setting: ClassVar[str | None] = "cursor_field"

    kind = "mongodb"

    filter: dict[str, Any] = Field(default_factory=dict, description="find() filter.")
    projection: dict[str, Any] | None = Field(default=None, description="find() projection.")
    pipeline: list[dict[str, Any]] | None = Field(default=None, description="An aggregation pipeline instead of "
                                                                            "find().")
    columns: dict[str, str] | None = Field(
        default=None, description="Typed columns instead of one JSON column: dotted path into the document → SQL "
                                  "type (BIGINT, DOUBLE, DECIMAL(12,2), VARCHAR, TIMESTAMPTZ, VARCHAR[], "
                                  "STRUCT(city VARCHAR, zip VARCHAR)); the column is the path with '.' as '_'.")
    cursor_field: str | None = Field(default=None, description="Incremental reads: a growing field (updated_at).")
    lookback: float = Field(default=0, ge=0, description="Re-read this much before the mark (seconds for dates).")

    def for_query(self, query: Any = None, params: Any = None) -> Source:
        """A collection name, or the seed's form ``{'collection': ..., 'filter': {...}, 'projection': ...,
        'pipeline': [...]}``; ``params`` are further settings."""
        if isinstance(query, str) and query not in ("", "*"):
            return self.model_copy(update={"collection": query, **dict(params or {})})
        if isinstance(query, dict):
            allowed = {"collection", "filter", "projection", "pipeline"}
            unknown = sorted(set(query) - allowed)
            if unknown:
                raise ConfigurationError(f"mongodb: unknown query key(s) {unknown}; allowed: {sorted(allowed)}")
            return self.model_copy(update={**query, **dict(params or {})})
        return self

    def describe(self) -> str:
        return describe_mongo(self, self.collection)

    def landing_plan(self) -> LandingPlan:
        return LandingPlan("merge" if self.cursor_field else "replace", (ID_COLUMN,))

    def check_connection(self) -> None:
        require("pymongo", "MongoSource")
        import pymongo.errors

        client = mongo_client(self)
        try:
            client.admin.command("ping")
        except pymongo.errors.PyMongoError as error:
            raise ClientConnectionError(f"mongodb: cannot reach {self.describe()} within {self.timeout_seconds:g} s: "
                                        f"{first_line(error)[:300]}") from error
        finally:
            client.close()

    def extract(self, state: dict | None = None) -> Extraction:
        if not self.collection:
            raise ConfigurationError("mongodb: set `collection`")
        return MongoExtraction(self, state)

    def column_types(self) -> dict[str, tuple[str, pa.DataType]]:
        """``column name → (path, Arrow type)`` of ``columns``, ``_id`` first; a bad type is named with its path."""
        if self.columns is None:
            return {}
        paths = {"_id": "VARCHAR", **self.columns}
        columns = {}
        for path, sql_type in paths.items():
            if not path or any(not part for part in path.split(".")):
                raise ConfigurationError(f"mongodb: columns: {path!r} is not a dotted path like address.city")
            name = path.replace(".", "_")
            if name in columns:
                raise ConfigurationError(f"mongodb: columns: {path!r} and {columns[name][0]!r} both become column "
                                         f"{name!r}")
            columns[name] = (path, arrow_type_of_sql(sql_type, f"mongodb: columns: {path}"))
        return columns


class MongoExtraction(Extraction):
    def __init__(self, source: MongoSource, state: dict | None):
        super().__init__(state)
        self.source = source
        self.client = None

    def _batches(self) -> Iterator[SourceBatch]:
        require("pymongo", "MongoSource")
        import pymongo.errors
        require("bson", "MongoSource")
        from bson import json_util

        source = self.source
        self.client = mongo_client(source)
        mark = decode_value(self.state["cursor"]) if "cursor" in self.state else None
        start = minus_lookback(mark, source.lookback)
        collection = self.client[source.database][source.collection]
        read, highest = 0, mark
        try:
            self.client.admin.command("ping")
            if source.pipeline is not None:
                stages = ([{"$match": {source.cursor_field: {"$gte": start}}}] if start is not None else []) + \
                    list(source.pipeline)
                cursor = collection.aggregate(stages, batchSize=source.batch_size)
            else:
                query = dict(source.filter)
                if start is not None:
                    query[source.cursor_field] = {"$gte": start}
                cursor = collection.find(query, source.projection, batch_size=source.batch_size)
                if source.cursor_field:
                    cursor = cursor.sort(source.cursor_field, 1)
            if source.columns is not None:
                yield from _typed_batches(source, cursor, self)
                return
            ids, records, positions, rejected = [], [], [], []
            for document in cursor:
                read += 1
                identifier = str(document.get("_id"))
                try:
                    text = json_util.dumps(document, json_options=json_util.RELAXED_JSON_OPTIONS, ensure_ascii=False)
                except (TypeError, ValueError) as error:
                    rejected.append(Rejected(f"{source.collection}:{identifier}", f"cannot be written as JSON: {error}"))
                    continue
                if source.cursor_field:
                    value = document.get(source.cursor_field)
                    if value is not None and (highest is None or value > highest):
                        highest = value
                ids.append(identifier)
                records.append(text)
                positions.append(f"{source.collection}:{identifier}")
                if len(records) >= source.batch_size:
                    yield SourceBatch(_batch(ids, records, positions), rejected)
                    ids, records, positions, rejected = [], [], [], []
            yield SourceBatch(_batch(ids, records, positions), rejected)
        except pymongo.errors.ServerSelectionTimeoutError as error:
            raise ClientConnectionError(f"mongodb: cannot reach {source.describe()} within "
                                        f"{source.timeout_seconds:g} s: {first_line(error)[:300]}") from error
        except pymongo.errors.AutoReconnect as error:
            raise ClientConnectionError(f"mongodb: the connection to {source.describe()} was lost after {read:,} "
                                        f"documents: {first_line(error)[:300]}") from error
        except pymongo.errors.OperationFailure as error:
            if error.code in (13, 18):
                raise CredentialsRefusedError(f"mongodb: {source.describe()} refused the credentials of "
                                            f"{source.username or 'the uri'}") from error
            raise QueryError(f"mongodb: reading {source.describe()} failed: {first_line(error)[:300]}") from error
        self._remember(highest)

    def _remember(self, highest) -> None:
        if self.source.cursor_field and highest is not None:
            if isinstance(highest, datetime) or isinstance(highest, (int, float, str)):
                self.state["cursor"] = encode_value(highest)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def _typed_batches(source: MongoSource, cursor, extraction: MongoExtraction) -> Iterator[SourceBatch]:
    """Documents as typed columns (``source.columns``), ``batch_size`` at a time."""
    columns = source.column_types()
    names = [*columns, POSITION_COLUMN]
    types = [arrow_type for _, arrow_type in columns.values()] + [pa.string()]
    mark = decode_value(extraction.state["cursor"]) if "cursor" in extraction.state else None
    highest, rows = mark, []
    for document in cursor:
        identifier = str(document.get("_id"))
        rows.append(tuple(identifier if path == "_id" else _plain(_at(document, path)) for path, _ in columns.values())
                    + (f"{source.collection}:{identifier}",))
        if source.cursor_field:
            value = document.get(source.cursor_field)
            if value is not None and (highest is None or value > highest):
                highest = value
        if len(rows) >= source.batch_size:
            yield SourceBatch(*_typed_batch(rows, names, types, columns))
            rows = []
    yield SourceBatch(*_typed_batch(rows, names, types, columns))
    extraction._remember(highest)


def _typed_batch(rows, names, types, columns):
    from dataclasses import replace

    from etl_platform.sources.relational import rows_to_batch

    batch, rejected = rows_to_batch(rows, names, types, lambda row: rows[row][-1])
    for number, item in enumerate(rejected):  # name the document's path, not only the column it became
        name = item.reason.removeprefix("column ").partition(":")[0]
        if name in columns:
            rejected[number] = replace(item, reason=f"field {columns[name][0]} (column {name})"
                                                    f"{item.reason.removeprefix('column ' + name)}")
    return batch, rejected


def _at(document: dict, path: str):
    """The value at a dotted path (``address.city``), None where any part is missing."""
    value = document
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _plain(value):
    """BSON values as the Python values Arrow takes: ObjectId → text, Decimal128 → Decimal, inside documents and
    arrays too."""
    require("bson", "MongoSource")
    from bson import Decimal128, ObjectId

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, Decimal128):
        return value.to_decimal()
    return value


def arrow_type_of_sql(sql_type: str, where: str) -> pa.DataType:
    """The Arrow type of a SQL type in DuckDB's spelling (``DECIMAL(12,2)``, ``STRUCT(a INT)``, ``VARCHAR[]``)."""
    import duckdb

    from etl_platform.warehouse.arrow import arrow_table

    if ";" in sql_type or "--" in sql_type:
        raise ConfigurationError(f"{where}: {sql_type!r} is not a SQL type")
    try:
        with duckdb.connect() as conn:
            return arrow_table(conn.sql(f"SELECT CAST(NULL AS {sql_type}) AS value")).schema.field("value").type
    except duckdb.Error as error:
        raise ConfigurationError(f"{where}: {sql_type!r} is not a SQL type DuckDB knows "
                                 f"({first_line(error)[:200]})") from None


def _batch(ids: list[str], records: list[str], positions: list[str]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array(ids, pa.string()), pa.array(records, pa.json_()), pa.array(positions, pa.string())],
        names=[ID_COLUMN, RECORD_COLUMN, POSITION_COLUMN])

