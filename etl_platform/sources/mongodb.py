"""MongoDB: a collection read with ``find`` (filter, projection) or an aggregation pipeline, in batches.

Each document lands as ``_id`` (text) and ``_record`` (relaxed Extended JSON: dates as ISO text, Decimal128 as
numbers, ObjectIds as ``{"$oid": ...}``); silver SQL picks fields with ``_record->>'$.field'``. The server's
cursor hands over ``batch_size`` documents at a time, so memory does not grow with the collection.
``cursor_field`` makes reads incremental (``{field: {$gte: mark}}``, sorted by it); documents re-read are
recognised by ``_id`` and replace their older version in bronze.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pyarrow as pa
from pydantic import Field

from etl_platform.destinations.mongodb import describe_mongo, mongo_client
from etl_platform.errors import ClientConnectionError, ConfigurationError, QueryError
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


class MongoSource(Source):
    """Documents of a MongoDB collection."""

    kind = "mongodb"

    uri: str | None = Field(default=None, repr=False)  # may hold a password
    host: str = "127.0.0.1"
    port: int = 27017
    username: str | None = None
    password: str | None = Field(default=None, repr=False)  # a secret
    auth_source: str | None = None
    database: str
    collection: str | None = None
    filter: dict[str, Any] = Field(default_factory=dict, description="find() filter.")
    projection: dict[str, Any] | None = Field(default=None, description="find() projection.")
    pipeline: list[dict[str, Any]] | None = Field(default=None, description="An aggregation pipeline instead of "
                                                                            "find().")
    cursor_field: str | None = Field(default=None, description="Incremental reads: a growing field (updated_at).")
    lookback: float = Field(default=0, ge=0, description="Re-read this much before the mark (seconds for dates).")

    def describe(self) -> str:
        return describe_mongo(self, self.collection)

    def landing_plan(self) -> LandingPlan:
        return LandingPlan("merge" if self.cursor_field else "replace", (ID_COLUMN,))

    def check_connection(self) -> None:
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


class MongoExtraction(Extraction):
    def __init__(self, source: MongoSource, state: dict | None):
        super().__init__(state)
        self.source = source
        self.client = None

    def _batches(self) -> Iterator[SourceBatch]:
        import pymongo.errors
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
                raise ClientConnectionError(f"mongodb: {source.describe()} refused the credentials of "
                                            f"{source.username or 'the uri'}") from error
            raise QueryError(f"mongodb: reading {source.describe()} failed: {first_line(error)[:300]}") from error
        if source.cursor_field and highest is not None:
            if isinstance(highest, datetime) or isinstance(highest, (int, float, str)):
                self.state["cursor"] = encode_value(highest)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def _batch(ids: list[str], records: list[str], positions: list[str]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array(ids, pa.string()), pa.array(records, pa.json_()), pa.array(positions, pa.string())],
        names=[ID_COLUMN, RECORD_COLUMN, POSITION_COLUMN])

