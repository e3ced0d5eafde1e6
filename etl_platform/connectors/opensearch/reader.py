"""OpenSearch: an index (or alias, or pattern) read page by page with ``search_after`` in a point in time.

A point in time (PIT) freezes what the read sees, so documents indexed or deleted during a long read neither
appear twice nor go missing; pages follow each other with ``search_after`` (never ``from``/``size``, which
costs more with every page and stops at 10,000). Each hit lands as ``_id``, ``_index`` and ``_record``
(the ``_source`` as JSON). ``cursor_field`` makes reads incremental (``range gte`` the mark, sorted by it);
re-read documents replace their older version in bronze (key ``_index`` + ``_id``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import Field

from etl_platform.connectors.opensearch.connection import OpenSearchConnection, describe_opensearch, opensearch_client
from etl_platform.errors import ClientConnectionError, ConfigurationError, CredentialsRefusedError, QueryError
from etl_platform.extras import require
from etl_platform.sources.base import POSITION_COLUMN, Extraction, LandingPlan, Source, SourceBatch, first_line

KEEP_ALIVE = "5m"
MAX_PAGE = 10_000  # OpenSearch's default index.max_result_window: a page may not be larger


class OpenSearchSource(Source, OpenSearchConnection):
    """Documents of an index, alias or pattern (connection fields: ``OpenSearchConnection``)."""

    object_setting: ClassVar[str | None] = "index"
    cursor_setting: ClassVar[str | None] = "cursor_field"

    kind = "opensearch"

    query: dict[str, Any] = Field(default_factory=lambda: {"match_all": {}}, description="The query DSL.")
    cursor_field: str | None = Field(default=None, description="Incremental reads: a growing field (@timestamp).")

    def for_query(self, query: Any = None, params: Any = None) -> Source:
        """A query DSL dict or a query-string text (``*``: all); ``params`` are further settings (the seed's
        ``execute_query('*', {'index': 'logs'})``)."""
        update = dict(params or {})
        if isinstance(query, dict):
            update["query"] = query
        elif query and query != "*":
            update["query"] = {"query_string": {"query": query}}
        return self.model_copy(update=update)

    def describe(self) -> str:
        return describe_opensearch(self, self.index)

    def landing_plan(self) -> LandingPlan:
        return LandingPlan("merge" if self.cursor_field else "replace", ("_index", "_id"))

    def client(self):
        return opensearch_client(self)

    def check_connection(self) -> None:
        require("opensearchpy", "OpenSearchSource")
        from opensearchpy import exceptions

        client = self.client()
        try:
            client.info()
        except exceptions.ConnectionError as error:
            raise ClientConnectionError(f"opensearch: cannot reach {self.describe()} within "
                                        f"{self.timeout_seconds:g} s: {type(error).__name__}") from error
        except exceptions.AuthenticationException as error:
            raise CredentialsRefusedError(f"opensearch: {self.describe()} refused the credentials of "
                                        f"{self.username}") from error
        finally:
            client.close()

    def extract(self, state: dict | None = None) -> Extraction:
        if not self.index:
            raise ConfigurationError("opensearch: set `index` (an index, alias or pattern)")
        return OpenSearchExtraction(self, state)


class OpenSearchExtraction(Extraction):
    def __init__(self, source: OpenSearchSource, state: dict | None):
        super().__init__(state)
        self.source = source
        self.client = None
        self.pit = None

    def _batches(self) -> Iterator[SourceBatch]:
        require("opensearchpy", "OpenSearchSource")
        from opensearchpy import exceptions

        source = self.source
        source.check_connection()
        self.client = source.client()
        query: dict = source.query
        mark = self.state.get("cursor")
        if source.cursor_field and mark is not None:
            query = {"bool": {"must": [source.query], "filter": [{"range": {source.cursor_field: {"gte": mark}}}]}}
        sort = ([{source.cursor_field: "asc"}] if source.cursor_field else []) + [{"_shard_doc": "asc"}]
        try:
            self.pit = self.client.create_pit(index=source.index, params={"keep_alive": KEEP_ALIVE})["pit_id"]
            after, highest, read = None, mark, 0
            page = min(source.batch_size, MAX_PAGE)
            while True:
                body = {"size": page, "query": query, "sort": sort,
                        "pit": {"id": self.pit, "keep_alive": KEEP_ALIVE}}
                if after is not None:
                    body["search_after"] = after
                hits = self.client.search(body=body)["hits"]["hits"]
                if not hits:
                    break
                read += len(hits)
                after = hits[-1]["sort"]
                if source.cursor_field:
                    values = [h["_source"].get(source.cursor_field) for h in hits]
                    top = max((v for v in values if v is not None), default=None)
                    if top is not None and (highest is None or top > highest):
                        highest = top
                yield SourceBatch(_batch(hits))
                if len(hits) < page:
                    break
        except exceptions.NotFoundError as error:
            raise QueryError(f"opensearch: {source.describe()} does not exist: {first_line(error)[:200]}") from error
        except exceptions.ConnectionError as error:
            raise ClientConnectionError(f"opensearch: the connection to {source.describe()} failed: "
                                        f"{type(error).__name__}") from error
        except exceptions.TransportError as error:
            raise QueryError(f"opensearch: searching {source.describe()} failed: {error.status_code} "
                             f"{str(error.error)[:300]}") from error
        if source.cursor_field and highest is not None:
            self.state["cursor"] = highest

    def close(self) -> None:
        if self.client is not None:
            if self.pit:
                try:
                    self.client.delete_pit(body={"pit_id": [self.pit]})
                except Exception:
                    pass  # it expires on its own after KEEP_ALIVE
            self.client.close()
            self.client = None


def _batch(hits: list[dict]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array([h["_id"] for h in hits], pa.string()), pa.array([h["_index"] for h in hits], pa.string()),
         pa.array([json.dumps(h.get("_source", {}), ensure_ascii=False) for h in hits], pa.json_()),
         pa.array([f"{h['_index']}:{h['_id']}" for h in hits], pa.string())],
        names=["_id", "_index", "_record", POSITION_COLUMN])
