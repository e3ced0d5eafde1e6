"""Apache Solr: a core or collection read with ``cursorMark`` deep paging (``/select``), ``batch_size`` per page.

The sort always ends with the unique key, as cursorMark requires; the read ends when Solr hands back the
cursorMark it was given. Each document lands as ``_id`` (its unique key) and ``_record`` (the document as
JSON). ``cursor_field`` makes reads incremental (``fq=<field>:[mark TO *]``, sorted by it first); re-read
documents replace their older version in bronze. No Solr server installs on our test machines: the tests
check the exact requests against a stand-in HTTP server, and run against a real core when
``ETL_TEST_SOLR_URL`` is set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import Field

from etl_platform.connectors.solr.connection import SolrConnection
from etl_platform.errors import ClientConnectionError, CredentialsRefusedError, QueryError
from etl_platform.sources.base import POSITION_COLUMN, Extraction, LandingPlan, Source, SourceBatch


class SolrSource(Source, SolrConnection):
    """Documents of a Solr core or collection, by cursorMark (connection fields: ``SolrConnection``)."""

    cursor_setting: ClassVar[str | None] = "cursor_field"

    kind = "solr"

    query: str = Field(default="*:*", description="q")
    filter_queries: list[str] = Field(default_factory=list, description="fq, each")
    fields: str | None = Field(default=None, description="fl (default: all stored fields)")
    cursor_field: str | None = Field(default=None, description="Incremental reads: a growing field (updated_at).")

    def for_query(self, query: Any = None, params: Any = None) -> Source:
        """A Solr ``q`` (``execute_query('title:etl', {'rows': ...})``); ``params`` are further settings."""
        update = dict(params or {})
        if query:
            update["query"] = query
        return self.model_copy(update=update)

    def describe(self) -> str:
        return SolrConnection.describe(self)

    def landing_plan(self) -> LandingPlan:
        return LandingPlan("merge" if self.cursor_field else "replace", ("_id",))

    def extract(self, state: dict | None = None) -> Extraction:
        return SolrExtraction(self, state)


class SolrExtraction(Extraction):
    def __init__(self, source: SolrSource, state: dict | None):
        super().__init__(state)
        self.source = source

    def _batches(self) -> Iterator[SourceBatch]:
        import httpx

        source = self.source
        mark = self.state.get("cursor")
        filters = list(source.filter_queries)
        if source.cursor_field and mark is not None:
            filters.append(f"{source.cursor_field}:[{_solr_term(mark)} TO *]")
        sort = ([f"{source.cursor_field} asc"] if source.cursor_field else []) + [f"{source.unique_key} asc"]
        params = {"q": source.query, "sort": ", ".join(sort), "rows": str(source.batch_size), "wt": "json"}
        if filters:
            params["fq"] = filters
        if source.fields:
            params["fl"] = source.fields
        auth = httpx.BasicAuth(source.username, source.password or "") if source.username else None
        cursor, highest = "*", mark
        with httpx.Client(timeout=source.timeout_seconds, auth=auth) as client:
            while True:
                try:
                    response = client.get(f"{source.url.rstrip('/')}/select", params={**params, "cursorMark": cursor})
                except httpx.TransportError as error:
                    raise ClientConnectionError(f"solr: cannot reach {source.describe()}: "
                                                f"{type(error).__name__}") from error
                if response.status_code in (401, 403):
                    raise CredentialsRefusedError(f"solr: {source.describe()} refused the credentials "
                                                f"({response.status_code})")
                if response.status_code >= 300:
                    raise QueryError(f"solr: {source.describe()} answered {response.status_code}: "
                                     f"{response.text[:300]}")
                body = response.json()
                documents = body.get("response", {}).get("docs", [])
                if documents:
                    if source.cursor_field:
                        values = [d.get(source.cursor_field) for d in documents if d.get(source.cursor_field)]
                        if values and (highest is None or max(values) > highest):
                            highest = max(values)
                    yield SourceBatch(_batch(documents, source.unique_key))
                following = body.get("nextCursorMark")
                if not following or following == cursor:
                    break
                cursor = following
        if source.cursor_field and highest is not None:
            self.state["cursor"] = highest


def _solr_term(value) -> str:
    text = str(value)
    return text if text.replace(".", "", 1).lstrip("-").isdigit() else '"' + text.replace('"', '\\"') + '"'


def _batch(documents: list[dict], unique_key: str) -> pa.RecordBatch:
    ids = [str(d.get(unique_key)) for d in documents]
    return pa.RecordBatch.from_arrays(
        [pa.array(ids, pa.string()), pa.array([json.dumps(d, ensure_ascii=False) for d in documents], pa.json_()),
         pa.array([f"{unique_key}:{i}" for i in ids], pa.string())],
        names=["_id", "_record", POSITION_COLUMN])
