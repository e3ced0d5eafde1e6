"""Apache Solr as a destination: Arrow batches sent as JSON documents to ``<core or collection>/update``.

- Every document carries the unique key (``unique_key``, default ``id``): from the key columns when given (one
  column: its value; several: a JSON array of the values, so no two keys share an id), from the data's own
  ``id`` column, or a new random id — decided before the first attempt, so a batch sent again replaces the same documents instead of doubling them. Adding a document whose key
  exists replaces it: that is ``append`` and ``upsert`` alike in Solr.
- Commit: one ``commit`` after the last batch (``commit=True``, the default) — until then searchers keep
  seeing the previous state.
- ``overwrite``: a delete-by-query of every document, the new documents, then one commit. What is atomic: a
  searcher opened by that commit sees only the new documents, and searchers before it only the old ones.
  What is not: a core with ``autoCommit openSearcher=true`` or ``autoSoftCommit`` may open a searcher in the
  middle and show a partial state, and a failure before the commit leaves the delete pending (we send a
  ``rollback``, which Solr only honours outside SolrCloud). For a true swap on SolrCloud, write a new
  collection and move an alias (``CREATEALIAS``); that is not automated here.
- 429/503 and connection errors are retried with backoff; any other error answer fails the write naming
  Solr's message (an unknown field, a bad value).

No Solr server installs on our test machines: the tests check the exact requests and bodies against a stand-in
HTTP server, and run against a real core when ``ETL_TEST_SOLR_URL`` is set.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time as clock_time, timezone
from decimal import Decimal
from typing import Any

import dagster as dg
from pydantic import Field

from etl_platform.destinations.errors import CredentialsRefusedError, DestinationConnectionError, ValidationError
from etl_platform.destinations.streams import checked_write, document_id, record_batches
from etl_platform.destinations.target_io_manager import TargetIOManager
from etl_platform.connectors.solr.connection import SolrConnection

RETRIES = 5
RETRIED_STATUSES = (429, 503)


@dataclass
class SolrWriteResult:
    target: str
    records_written: int = 0
    batches: int = 0
    committed: bool = False
    seconds: float = 0.0


class SolrTarget(SolrConnection):
    timeout: float = Field(default=10.0, gt=0, description="Seconds per request.")
    commit: bool = Field(default=True, description="Commit once after the write.")
    batch_size: int = Field(default=1000, gt=0)

    def write(self, data, mode: str = "append", keys=(), commit: bool | None = None, log=None) -> SolrWriteResult:
        import httpx

        _, keys = checked_write("solr", "url", self.url, mode, keys)
        started = time.monotonic()
        result = SolrWriteResult(self.describe())
        auth = httpx.BasicAuth(self.username, self.password or "") if self.username else None
        with httpx.Client(timeout=self.timeout, auth=auth) as client:
            try:
                if mode == "overwrite":
                    self._post(client, {"delete": {"query": "*:*"}})
                for batch in record_batches(data):
                    records = batch.to_pylist()
                    for start in range(0, len(records), self.batch_size):
                        documents = [self._document(r, keys) for r in records[start:start + self.batch_size]]
                        self._post(client, documents)
                        result.records_written += len(documents)
                        result.batches += 1
                        if log and result.batches % 100 == 0:
                            log(f"{result.target}: {result.records_written:,} documents in {result.batches} batches")
                if self.commit if commit is None else commit:
                    self._post(client, {"commit": {}})
                    result.committed = True
            except BaseException:
                if mode == "overwrite":
                    try:
                        self._post(client, {"rollback": {}}, retries=0)
                    except Exception:
                        pass  # SolrCloud refuses rollback; the write's own error is what matters
                raise
        result.seconds = time.monotonic() - started
        return result

    def _document(self, record: dict, keys: tuple[str, ...]) -> dict:
        document = {k: _json_value(v) for k, v in record.items()}
        if keys:
            values = [record.get(k) for k in keys]
            if any(v is None for v in values):
                raise ValidationError(f"solr: a record has no value in key column(s) {', '.join(keys)}: "
                                      f"{json.dumps(document, default=str)[:200]}")
            document[self.unique_key] = document_id(values)
        elif document.get(self.unique_key) is None:
            document[self.unique_key] = uuid.uuid4().hex
        return document

    def _post(self, client, body, retries: int = RETRIES) -> dict:
        import httpx

        url = f"{self.url.rstrip('/')}/update"
        for attempt in range(retries + 1):
            try:
                response = client.post(url, content=json.dumps(body, ensure_ascii=False).encode(),
                                       headers={"Content-Type": "application/json"}, params={"wt": "json"})
            except httpx.TransportError as error:
                if attempt == retries:
                    raise DestinationConnectionError(f"solr: {self.describe()} could not be reached after "
                                                     f"{attempt + 1} attempt(s): {type(error).__name__}") from error
                time.sleep(0.2 * 2**attempt)
                continue
            if response.status_code in RETRIED_STATUSES and attempt < retries:
                time.sleep(0.2 * 2**attempt)
                continue
            if response.status_code in (401, 403):
                raise CredentialsRefusedError(f"solr: {self.describe()} refused the credentials "
                                              f"({response.status_code})")
            if response.status_code >= 300:
                try:
                    message = response.json().get("error", {}).get("msg", response.text)
                except ValueError:
                    message = response.text
                raise ValidationError(f"solr: {self.describe()} refused the update ({response.status_code}): "
                                      f"{str(message)[:400]}")
            return response.json()
        raise DestinationConnectionError(f"solr: {self.describe()} kept answering {response.status_code}")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):  # Solr's date format: ISO 8601 in UTC with a Z
        moment = value.astimezone(timezone.utc) if value.tzinfo else value
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00Z"
    if isinstance(value, clock_time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):  # Solr documents are flat: nested values travel as JSON text
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    return value



class SolrIOManager(TargetIOManager, SolrConnection):
    """Assets as the documents of a Solr core or collection (``url``); overwrite by default (see the module
    docstring for what it guarantees). Credentials through ``dg.EnvVar``."""

    batch_size: int = 1000
    timeout: float = 10.0

    def target(self, context) -> SolrTarget:
        return self.build(SolrTarget)

    def load_input(self, context: dg.InputContext):
        import pyarrow as pa

        from etl_platform.connectors.solr.reader import SolrSource

        source = self.build(SolrSource, timeout_seconds=self.timeout)
        return pa.Table.from_pylist([json.loads(text) for text in source.read_table().column("_record").to_pylist()])
