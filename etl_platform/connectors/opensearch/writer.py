"""OpenSearch as a destination: Arrow batches indexed with the ``_bulk`` API.

- Every document gets its ``_id`` before it is sent — from the key columns (``keys``), or a new random id for
  plain appends — and is sent as an ``index`` action, so a batch sent again after a timeout or a 429 replaces
  the same documents instead of doubling them.
- ``upsert``: ``_id`` from the key columns (NULL keys refused; one column: its value; several: a JSON array of
  the values, so no two keys share an id).
- ``overwrite``: the documents go to a new index ``<name>__<time>-<host>-<pid>``, which then takes the alias
  ``<name>`` in one ``_aliases`` call (readers see the old index or the new one, never an empty or half-written
  one); the old indices are deleted after. An index left by a writer killed before its swap is deleted by the
  next overwrite of the name once that writer is gone (its process ended on this host; a day old otherwise). The first overwrite of a name that is a real index, not an alias, is refused
  with the reason (it would leave a moment with no index).
- Items that fail with 429/503 are sent again with backoff; any other failed item fails the write, naming
  up to five ids with OpenSearch's error type and reason (a mapping conflict, say).
- A new index is created with a mapping from the Arrow schema (``create_index``): integers ``long``, floats
  and decimals ``double``, text ``text`` with a ``keyword`` sub-field, timestamps and dates ``date``, booleans
  ``boolean``, structs ``object``, binary ``binary``; lists map as their element.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time as clock_time, timezone
from decimal import Decimal
from typing import Any

import dagster as dg
import pyarrow as pa
from pydantic import Field

from etl_platform.destinations.errors import ConfigurationError, CredentialsRefusedError, DestinationConnectionError, \
    ValidationError
from etl_platform.destinations.streams import abandoned, checked_write, document_id, document_too_large, quietly, \
    record_batches, writer_tag
from etl_platform.destinations.target_io_manager import TargetIOManager
from etl_platform.extras import require
from etl_platform.connectors.opensearch.connection import OpenSearchConnection, describe_opensearch, opensearch_client

RETRIES = 5
RETRIED_STATUSES = (429, 503)


@dataclass
class OpenSearchWriteResult:
    target: str
    records_written: int = 0
    created: int = 0
    updated: int = 0
    batches: int = 0
    retried_items: int = 0
    seconds: float = 0.0


class OpenSearchTarget(OpenSearchConnection):
    batch_size: int = Field(default=1000, gt=0, description="Documents per _bulk call.")
    max_batch_bytes: int = Field(default=10 * 1024 * 1024, gt=0, description="Bytes per _bulk call.")
    max_document_bytes: int = Field(default=100 * 1024 * 1024, gt=0, description="The largest document sent (the "
                                    "cluster's http.max_content_length, 100 MiB by default); larger ones fail the "
                                    "write naming their id before anything of their batch is sent.")
    create_index: bool = Field(default=True, description="Create a missing index with a mapping from the schema.")
    refresh: bool = Field(default=False, description="Refresh after the write so it is searchable at once.")

    def describe(self, index: str | None = None) -> str:
        return describe_opensearch(self, index or self.index)

    def client(self):
        return opensearch_client(self, retries=0)  # _send retries per item itself

    def write(self, data, mode: str = "append", keys: Iterable[str] = (), index: str | None = None,
              log=None) -> OpenSearchWriteResult:
        require("opensearchpy", "The OpenSearch writer")
        from opensearchpy import exceptions

        name, keys = checked_write("opensearch", "index", index or self.index, mode, keys)
        started = time.monotonic()
        result = OpenSearchWriteResult(self.describe(name))
        client = self.client()
        try:
            client.info()
            target = name if mode != "overwrite" else f"{name}__{writer_tag()}"
            if mode == "overwrite" and client.indices.exists(index=name) and \
                    not client.indices.exists_alias(name=name):
                raise ConfigurationError(f"opensearch: {name} is an index, not an alias; overwrite swaps an alias "
                                         f"so readers never see it empty. Reindex it once under another name "
                                         f"and make {name} an alias of that.")
            if mode == "overwrite":
                self._remove_abandoned(client, name, log)
            created = False
            try:
                for batch in record_batches(data):
                    if not created:
                        created = True
                        if self.create_index and not client.indices.exists(index=target):
                            client.indices.create(index=target, body={"mappings": mapping(batch.schema)})
                    for documents in self._chunks(batch, keys, mode):
                        self._send(client, target, documents, result)
                        if log and result.batches % 100 == 0:
                            log(f"{result.target}: {result.records_written:,} documents in {result.batches} batches")
                if mode == "overwrite":
                    if not created:
                        client.indices.create(index=target)
                    self._swap_alias(client, name, target)
                elif self.refresh:
                    client.indices.refresh(index=target)
            except BaseException:
                if mode == "overwrite":
                    quietly(lambda: client.indices.delete(index=target))
                raise
        except exceptions.ConnectionError as error:
            raise DestinationConnectionError(f"opensearch: cannot reach {self.describe(name)} within "
                                             f"{self.timeout_seconds:g} s: {type(error).__name__}") from error
        except (exceptions.AuthenticationException, exceptions.AuthorizationException) as error:
            raise CredentialsRefusedError(f"opensearch: {self.describe(name)} refused the credentials of "
                                          f"{self.username}") from error
        except exceptions.TransportError as error:
            raise ValidationError(f"opensearch: writing {self.describe(name)} failed: {error.status_code} "
                                  f"{str(error.error)[:300]}") from error
        finally:
            client.close()
        result.seconds = time.monotonic() - started
        return result

    def _chunks(self, batch: pa.RecordBatch, keys: tuple[str, ...], mode: str) -> Iterator[list[tuple[str, str]]]:
        """``(id, JSON source)`` pairs, at most ``batch_size`` documents and ``max_batch_bytes`` per chunk."""
        missing = [k for k in keys if k not in batch.schema.names]
        if missing:
            raise ConfigurationError(f"opensearch: key column(s) {', '.join(missing)} are not in the data "
                                     f"(columns: {', '.join(batch.schema.names)})")
        for k in keys:
            if batch.column(k).null_count:
                raise ValidationError(f"opensearch: key column {k} holds {batch.column(k).null_count} NULL value(s); "
                                      "every document needs its id")
        chunk, size = [], 0
        for number, record in enumerate(batch.to_pylist()):
            identifier = document_id([record[k] for k in keys]) if keys else uuid.uuid4().hex
            source = json.dumps({k: _json_value(v) for k, v in record.items()}, ensure_ascii=False)
            if len(source) > self.max_document_bytes:
                raise document_too_large("opensearch", repr(identifier) if keys else f"at row {number} of its batch",
                                         record, len(source.encode()), self.max_document_bytes)
            chunk.append((identifier, source))
            size += len(source) + len(identifier) + 40
            if len(chunk) >= self.batch_size or size >= self.max_batch_bytes:
                yield chunk
                chunk, size = [], 0
        if chunk:
            yield chunk

    def _send(self, client, index: str, documents: list[tuple[str, str]], result: OpenSearchWriteResult) -> None:
        require("opensearchpy", "The OpenSearch writer")
        from opensearchpy import exceptions

        pending = documents
        for attempt in range(RETRIES + 1):
            body = "".join(json.dumps({"index": {"_index": index, "_id": i}}) + "\n" + s + "\n" for i, s in pending)
            try:
                answer = client.bulk(body=body)
            except (exceptions.ConnectionTimeout, exceptions.ConnectionError) as error:
                if attempt == RETRIES:
                    raise DestinationConnectionError(f"opensearch: _bulk to {index} failed after {RETRIES + 1} "
                                                     f"attempts: {type(error).__name__}") from error
                time.sleep(0.2 * 2**attempt)
                continue
            except exceptions.TransportError as error:
                if error.status_code in RETRIED_STATUSES and attempt < RETRIES:
                    time.sleep(0.2 * 2**attempt)
                    continue
                raise
            retry, failed = [], []
            for (identifier, source), item in zip(pending, answer["items"]):
                outcome = item.get("index", {})
                status = outcome.get("status", 500)
                if status in RETRIED_STATUSES:
                    retry.append((identifier, source))
                elif status >= 300:
                    failed.append((identifier, outcome.get("error", {})))
                elif outcome.get("result") == "updated":
                    result.updated += 1
                else:
                    result.created += 1
            if failed:
                shown = "; ".join(f"_id {i}: {e.get('type', '?')}: {str(e.get('reason', e))[:200]}" for i, e in failed[:5])
                raise ValidationError(f"opensearch: {len(failed)} document(s) refused by {index}: {shown}"
                                      + (" ..." if len(failed) > 5 else ""))
            result.records_written += len(pending) - len(retry)
            if not retry:
                break
            if attempt == RETRIES:
                raise DestinationConnectionError(f"opensearch: {len(retry)} document(s) still refused with "
                                                 f"429/503 by {index} after {RETRIES + 1} attempts")
            result.retried_items += len(retry)
            pending = retry
            time.sleep(0.2 * 2**attempt)
        result.batches += 1

    def _remove_abandoned(self, client, alias: str, log) -> None:
        """Delete the indices of overwrites whose writer was killed before its alias swap (``<alias>__<tag>``,
        not behind the alias, writer gone: ``streams.abandoned``)."""
        prefix = f"{alias}__"
        indices = client.indices.get_alias(index=f"{prefix}*", ignore_unavailable=True, allow_no_indices=True)
        current = {index for index, info in indices.items() if alias in (info.get("aliases") or {})}
        for index in abandoned([i for i in indices if i not in current], prefix):
            client.indices.delete(index=index)
            if log:
                log(f"opensearch: deleted {index}, left by an overwrite whose writer is gone")

    def _swap_alias(self, client, alias: str, index: str) -> None:
        client.indices.refresh(index=index)
        old = list(client.indices.get_alias(name=alias)) if client.indices.exists_alias(name=alias) else []
        actions = [{"remove": {"index": o, "alias": alias}} for o in old] + [{"add": {"index": index, "alias": alias}}]
        client.indices.update_aliases(body={"actions": actions})
        for o in old:
            quietly(lambda o=o: client.indices.delete(index=o))


def mapping(schema: pa.Schema) -> dict:
    return {"properties": {f.name: _field_mapping(f.type) for f in schema if f.name != "_id"}}


def _field_mapping(arrow_type: pa.DataType) -> dict:
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return _field_mapping(arrow_type.value_type)
    if pa.types.is_struct(arrow_type):
        return {"properties": {arrow_type.field(i).name: _field_mapping(arrow_type.field(i).type)
                               for i in range(arrow_type.num_fields)}}
    if pa.types.is_integer(arrow_type):
        return {"type": "long"}
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return {"type": "double"}
    if pa.types.is_boolean(arrow_type):
        return {"type": "boolean"}
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return {"type": "date"}
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return {"type": "binary"}
    return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    if isinstance(value, (date, clock_time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


class OpenSearchIOManager(TargetIOManager, OpenSearchConnection):
    """Assets as OpenSearch indices (``index``, or the asset key's last part); overwrite (an alias swap) by
    default. Credentials through ``dg.EnvVar``."""

    batch_size: int = 1000

    def target(self, context) -> OpenSearchTarget:
        return self.build(OpenSearchTarget, index=self.index or context.asset_key.path[-1], refresh=True)

    def load_input(self, context: dg.InputContext) -> pa.Table:
        from etl_platform.connectors.opensearch.reader import OpenSearchSource

        target = self.target(context.upstream_output)
        source = self.build(OpenSearchSource, index=target.index, batch_size=10_000)
        records = source.read_table().column("_record").to_pylist()
        return pa.Table.from_pylist([json.loads(text) for text in records])
