"""MongoDB as a destination: Arrow batches written as documents, in append, upsert or overwrite mode.

- ``append``: ``insert_many(ordered=False)`` per batch. Each document gets its ``_id`` before the first attempt,
  so a batch retried after a dropped connection cannot double a document: the copies already written answer
  "duplicate key" and count as written.
- ``upsert``: ``bulk_write`` of ``ReplaceOne({keys}, document, upsert=True)``, unordered; the key columns may not
  be NULL; a unique index on them is created when it is missing (``create_indexes``).
- ``overwrite``: the documents go to a new collection ``<name>__etl_new_<time>-<host>-<pid>``, which then replaces
  the target with ``renameCollection(dropTarget=True)``: readers see the old collection or the new one, never an
  empty or half-written one. A failed write drops the new collection and leaves the target as it was; one left
  by a killed writer is dropped by the next overwrite of the name once that writer is gone (its process ended
  on this host; a day old otherwise).

Per-record failures of a bulk call are reported (which ``_id``/keys, which error) and fail the write.
Types: Arrow timestamps become BSON dates (millisecond precision; naive ones are taken as UTC), dates become
midnight UTC dates, decimals Decimal128, structs sub-documents, lists arrays, binary BSON binary.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time as clock_time, timezone
from decimal import Decimal
from typing import Any

import dagster as dg
import pyarrow as pa
from pydantic import Field

from etl_platform.destinations.errors import ConfigurationError, CredentialsRefusedError, DestinationConnectionError, \
    ValidationError
from etl_platform.destinations.streams import abandoned, checked_write, document_too_large, quietly, record_batches, \
    writer_tag
from etl_platform.destinations.target_io_manager import TargetIOManager
from etl_platform.extras import require
from etl_platform.connectors.mongodb.connection import MongoConnection, describe_mongo, mongo_client

RETRIES = 4
STAGING_INFIX = "__etl_new_"  # an overwrite's new collection: <name>__etl_new_<writer tag>
MAX_BATCH_BYTES = 16 * 1024 * 1024  # MongoDB's own limit for one message is 48 MB; stay well below
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # one BSON document, when the server does not say
BSON_TOO_LARGE = (10334, 17419, 17420)  # MongoDB's BSONObjectTooLarge and "document to insert/upsert is larger"
_SIZE_ERROR = re.compile(r"too large|larger than \d+", re.IGNORECASE)


@dataclass
class MongoWriteResult:
    target: str
    records_written: int = 0
    inserted: int = 0
    upserted: int = 0
    modified: int = 0
    batches: int = 0
    seconds: float = 0.0
    inserted_ids: list = field(default_factory=list)


class MongoTarget(MongoConnection):
    """Where documents go: a server (``uri``, or host/port/credentials), a database and a collection."""

    batch_size: int = Field(default=1000, gt=0, description="Documents per bulk call (also bounded by 16 MiB).")
    create_indexes: bool = Field(default=True, description="upsert: create a unique index on the key columns.")

    def describe(self, collection: str | None = None) -> str:
        return describe_mongo(self, collection or self.collection)

    def client(self):
        return mongo_client(self)

    def write(self, data: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch], mode: str = "append",
              keys: list[str] | tuple[str, ...] = (), collection: str | None = None, log=None) -> MongoWriteResult:
        """Write every batch of ``data`` to ``collection`` (default: the configured one)."""
        require("pymongo", "The MongoDB writer")
        import pymongo.errors

        name, keys = checked_write("mongodb", "collection", collection or self.collection, mode, keys)
        started = time.monotonic()
        result = MongoWriteResult(self.describe(name))
        client = self.client()
        try:
            client.admin.command("ping")  # unreachable or refusing: one clear error before any write
            database = client[self.database]
            target = name if mode != "overwrite" else f"{name}{STAGING_INFIX}{writer_tag()}"
            if mode == "overwrite":
                for left in abandoned(database.list_collection_names(filter={"name": {"$regex": f"^{re.escape(name)}"
                                                                                             f"{STAGING_INFIX}"}}),
                                      f"{name}{STAGING_INFIX}"):
                    database.drop_collection(left)
                    if log:
                        log(f"mongodb: dropped {left}, left by an overwrite whose writer is gone")
            try:
                if mode == "overwrite":  # created first: an overwrite with no rows swaps in an empty collection
                    database.create_collection(target)
                if mode == "upsert" and self.create_indexes:
                    database[name].create_index([(k, 1) for k in keys], unique=True,
                                                name="etl_platform_" + "_".join(keys))
                for documents in _document_batches(record_batches(data), self.batch_size,
                                                   keys if mode == "upsert" else (), assign_ids=mode != "upsert"):
                    self._write_batch(database[target], documents, mode, keys, result)
                    if log and result.batches % 100 == 0:
                        log(f"{result.target}: {result.records_written:,} documents in {result.batches} batches")
                if mode == "overwrite":
                    database[target].rename(name, dropTarget=True)
            except BaseException:
                if mode == "overwrite":
                    quietly(lambda: database.drop_collection(target))
                raise
        except pymongo.errors.ServerSelectionTimeoutError as error:
            raise DestinationConnectionError(f"mongodb: cannot reach {self.describe(name)} within "
                                             f"{self.timeout_seconds:g} s: {str(error).split(',')[0][:300]}") from error
        except pymongo.errors.OperationFailure as error:
            if error.code in (13, 18):  # Unauthorized, AuthenticationFailed
                raise CredentialsRefusedError(f"mongodb: {self.describe(name)} refused the credentials of "
                                              f"{self.username or 'the uri'}: {error.details.get('errmsg', '')}"
                                              ) from error
            raise ValidationError(f"mongodb: writing {self.describe(name)} failed: {error}") from error
        finally:
            client.close()
        result.seconds = time.monotonic() - started
        return result

    def _write_batch(self, collection, documents: list[dict], mode: str, keys, result: MongoWriteResult) -> None:
        require("pymongo", "The MongoDB writer")
        import pymongo.errors
        require("pymongo", "The MongoDB writer")
        from pymongo import ReplaceOne

        for attempt in range(RETRIES + 1):
            try:
                if mode == "upsert":
                    answer = collection.bulk_write(
                        [ReplaceOne({k: d[k] for k in keys}, d, upsert=True) for d in documents], ordered=False)
                    result.upserted += answer.upserted_count
                    result.modified += answer.modified_count
                else:
                    collection.insert_many(documents, ordered=False)
                    result.inserted += len(documents)
                    result.inserted_ids += [d["_id"] for d in documents]
                break
            except pymongo.errors.BulkWriteError as error:
                errors = error.details.get("writeErrors", [])
                real = [e for e in errors if not (e.get("code") == 11000 and mode != "upsert" and attempt > 0)]
                too_large = [e for e in real if e.get("code") in BSON_TOO_LARGE or _SIZE_ERROR.search(str(e.get("errmsg")))]
                if too_large:
                    raise _too_large(collection, documents, keys, _stated_limit(too_large[0])) from error
                if real:
                    raise ValidationError(_bulk_failures(collection.name, documents, real, keys)) from error
                result.inserted += len(documents)  # the duplicates are this batch's own earlier attempt
                result.inserted_ids += [d["_id"] for d in documents]
                break
            except pymongo.errors.DocumentTooLarge as error:  # pymongo refuses it before sending anything
                raise _too_large(collection, documents, keys) from error
            except pymongo.errors.ServerSelectionTimeoutError:
                raise  # no server at all: retrying would only wait again
            except (pymongo.errors.AutoReconnect, pymongo.errors.NetworkTimeout) as error:
                if attempt == RETRIES:
                    raise DestinationConnectionError(f"mongodb: writing to {collection.full_name} failed after "
                                                     f"{RETRIES + 1} attempts: {error}") from error
                time.sleep(0.2 * 2**attempt)
        result.records_written += len(documents)
        result.batches += 1


def _stated_limit(failure: dict) -> int | None:
    """The limit a server's "too large" write error states (``max size: 16777216``), if it does."""
    found = re.search(r"(?:max(?:imum)? size:?|larger than) (\d+)", str(failure.get("errmsg", "")))
    return int(found.group(1)) if found else None


def _too_large(collection, documents: list[dict], keys, limit: int | None = None) -> ValidationError:
    """Which document of a batch is over the server's limit (16 MiB of BSON unless it says otherwise): pymongo
    refuses it before sending when it knows the server's limit, else the server refuses the item."""
    bson = require("bson", "The MongoDB writer")

    limit = limit or collection.database.client.max_bson_size or MAX_DOCUMENT_BYTES
    for document in documents:
        size = len(bson.encode(document))
        if size > limit:
            key = {k: document.get(k) for k in keys} if keys else {"_id": document.get("_id")}
            return document_too_large("mongodb", key, document, size, limit)
    return ValidationError(f"mongodb: a batch for {collection.full_name} holds a document over the server's limit "
                           f"of {limit:,} bytes")


def _bulk_failures(collection: str, documents: list[dict], errors: list[dict], keys) -> str:
    shown = []
    for failure in errors[:5]:
        document = documents[failure.get("index", 0)] if failure.get("index", 0) < len(documents) else {}
        key = {k: document.get(k) for k in keys} if keys else {"_id": document.get("_id")}
        shown.append(f"{key}: {failure.get('errmsg', failure)}"[:300])
    return (f"mongodb: {len(errors)} document(s) of a batch were refused by {collection}: " + "; ".join(shown)
            + (" ..." if len(errors) > 5 else ""))


def _document_batches(batches: Iterable[pa.RecordBatch], size: int, keys, assign_ids: bool) -> Iterator[list[dict]]:
    """Documents in lists of at most ``size`` documents (and about 16 MiB); with ``assign_ids`` an ``_id`` is set
    on each that has none (upserts find their document by the key columns instead)."""
    require("bson", "The MongoDB writer")
    from bson import ObjectId

    pending: list[dict] = []
    pending_bytes = 0
    for batch in batches:
        missing = [k for k in keys if k not in batch.schema.names]
        if missing:
            raise ConfigurationError(f"mongodb: key column(s) {', '.join(missing)} are not in the data "
                                     f"(columns: {', '.join(batch.schema.names)})")
        for k in keys:
            nulls = batch.column(k).null_count
            if nulls:
                raise ValidationError(f"mongodb: key column {k} holds {nulls} NULL value(s); an upsert needs a key "
                                      "on every record")
        row_bytes = max(batch.nbytes // max(batch.num_rows, 1), 1)
        for record in batch.to_pylist():
            document = {name: _bson_value(value) for name, value in record.items()}
            if assign_ids:
                document.setdefault("_id", ObjectId())
            pending.append(document)
            pending_bytes += row_bytes
            if len(pending) >= size or pending_bytes >= MAX_BATCH_BYTES:
                yield pending
                pending, pending_bytes = [], 0
    if pending:
        yield pending


def _bson_value(value: Any) -> Any:
    require("bson", "The MongoDB writer")
    from bson import Decimal128

    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if isinstance(value, Decimal):
        return Decimal128(value)
    if isinstance(value, clock_time):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _bson_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bson_value(v) for v in value]
    return value


class MongoDBIOManager(TargetIOManager, MongoConnection):
    """Assets as MongoDB collections (``<database>.<asset key's last part>`` unless ``collection`` is set);
    overwrite (a collection swap) by default. Credentials through ``dg.EnvVar``."""

    batch_size: int = 1000

    def target(self, context) -> MongoTarget:
        return self.build(MongoTarget, collection=self.collection or context.asset_key.path[-1])

    def load_input(self, context: dg.InputContext) -> pa.Table:
        target = self.target(context.upstream_output)
        client = mongo_client(self)
        try:
            documents = list(client[self.database][target.collection].find({}, {"_id": 0}))
        finally:
            client.close()
        return pa.Table.from_pylist(documents)
