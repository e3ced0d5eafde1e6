"""Solr writer and reader at the protocol boundary, and against a real core when ``ETL_TEST_SOLR_URL`` is set.

No Solr server installs on these machines, so the boundary tests use a stand-in HTTP server (the only
stand-in here): it records every request — path, parameters, JSON body — and answers as Solr's documented
``/update`` and ``/select`` (cursorMark) APIs do, so the tests check exactly what is sent.
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import duckdb
import pyarrow as pa
import pytest

from etl_platform.destinations.errors import ValidationError
from etl_platform.connectors.solr.writer import SolrTarget
from etl_platform.readers import ClientFactory
from etl_platform.sources import SolrSource, ingest
from etl_platform.writers import WriterFactory
from etl_platform_tests.servers import http_server


class StandInSolr(BaseHTTPRequestHandler):
    """Records requests; keeps documents by id; serves /select with cursorMark paging sorted by id."""

    requests: list = []
    documents: dict = {}
    fail_next: list = []

    def log_message(self, *args):
        pass

    def _answer(self, status: int, body: dict):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        url = urlparse(self.path)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StandInSolr.requests.append(("POST", url.path, parse_qs(url.query), body))
        if StandInSolr.fail_next:
            status = StandInSolr.fail_next.pop(0)
            return self._answer(status, {"error": {"msg": "unknown field 'bogus'", "code": status}})
        if isinstance(body, list):
            for document in body:
                StandInSolr.documents[document["id"]] = document
        elif "delete" in body:
            StandInSolr.documents.clear()
        return self._answer(200, {"responseHeader": {"status": 0, "QTime": 1}})

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        StandInSolr.requests.append(("GET", url.path, query, None))
        rows, mark = int(query["rows"][0]), query["cursorMark"][0]
        ordered = sorted(StandInSolr.documents.values(), key=lambda d: d["id"])
        after = [d for d in ordered if mark == "*" or d["id"] > mark][:rows]
        following = after[-1]["id"] if after else mark
        return self._answer(200, {"response": {"numFound": len(ordered), "docs": after}, "nextCursorMark": following})


@contextmanager
def stand_in_solr():
    StandInSolr.requests, StandInSolr.documents, StandInSolr.fail_next = [], {}, []
    with http_server(StandInSolr) as url:
        yield f"{url}/solr/mycore"


def test_writer_sends_json_updates_with_keys_and_one_commit():
    with stand_in_solr() as url:
        target = SolrTarget(url=url, batch_size=2)
        rows = pa.table({"sku": ["a", "b", "c"], "price": [1.5, 2.0, None],
                         "at": pa.array([datetime(2024, 1, 1, 8, tzinfo=timezone.utc)] * 3)})
        result = target.write(rows, "upsert", ["sku"])
        assert (result.records_written, result.batches, result.committed) == (3, 2, True)
        posts = [(path, params, body) for method, path, params, body in StandInSolr.requests]
        assert posts[0] == ("/solr/mycore/update", {"wt": ["json"]}, [
            {"sku": "a", "price": 1.5, "at": "2024-01-01T08:00:00.000000Z", "id": "a"},
            {"sku": "b", "price": 2.0, "at": "2024-01-01T08:00:00.000000Z", "id": "b"}])
        assert posts[1][2] == [{"sku": "c", "price": None, "at": "2024-01-01T08:00:00.000000Z", "id": "c"}]
        assert posts[2][2] == {"commit": {}} and len(posts) == 3


def test_overwrite_deletes_then_adds_then_commits_and_errors_are_named():
    with stand_in_solr() as url:
        target = SolrTarget(url=url)
        target.write(pa.table({"id": ["x"]}), "overwrite")
        bodies = [body for _, _, _, body in StandInSolr.requests]
        assert bodies == [{"delete": {"query": "*:*"}}, [{"id": "x"}], {"commit": {}}]
        StandInSolr.requests = []  # no rows (the source has none now): the collection is emptied
        target.write(pa.RecordBatchReader.from_batches(pa.schema([]), []), "overwrite")
        assert [body for _, _, _, body in StandInSolr.requests] == [{"delete": {"query": "*:*"}}, {"commit": {}}]

        StandInSolr.requests, StandInSolr.fail_next = [], [503, 400]
        with pytest.raises(ValidationError, match=r"refused the update \(400\): unknown field 'bogus'"):
            target.write(pa.table({"id": ["y"], "bogus": [1]}), "append")
        assert [body for _, _, _, body in StandInSolr.requests] == [[{"id": "y", "bogus": 1}]] * 2  # 503 retried


def test_refused_credentials_are_said_once_and_not_retried():
    """A 401 (or 403) is refused credentials: no retry inside the writer, and none by a step's retry policy."""
    from etl_platform.destinations.errors import CredentialsRefusedError
    from etl_platform.retries import retryable

    with stand_in_solr() as url:
        StandInSolr.fail_next = [401]
        with pytest.raises(CredentialsRefusedError, match=r"refused the credentials \(401\)") as refused:
            SolrTarget(url=url).write(pa.table({"id": ["y"]}), "append")
        assert len(StandInSolr.requests) == 1 and not retryable(refused.value)


def test_reader_pages_with_cursor_mark_and_seed_examples():
    with stand_in_solr() as url:
        writer = WriterFactory.create_writer('solr', {'url': url, 'timeout': 10, 'commit': True})
        with writer:
            result = writer.write([{"id": f"doc{i:03d}", "title": f"t{i}"} for i in range(25)], commit=True)
        assert result["records_written"] == 25 and result["committed"] is True
        warehouse = duckdb.connect()
        loaded = ingest(warehouse, SolrSource(url=url, batch_size=10), "docs")
        assert loaded.rows_written == 25 and loaded.batches == 3
        selects = [params for method, _, params, _ in StandInSolr.requests if method == "GET"]
        assert [p["cursorMark"][0] for p in selects] == ["*", "doc009", "doc019", "doc024"]
        assert selects[0]["sort"] == ["id asc"] and selects[0]["q"] == ["*:*"] and selects[0]["rows"] == ["10"]
        with ClientFactory.create_client("solr", {"url": url}) as reader:
            assert len(reader.execute_query("*:*")) == 25


def test_io_manager_writes_an_asset_and_reads_it_back():
    import dagster as dg

    from etl_platform.connectors.solr.writer import SolrIOManager

    @dg.asset(io_manager_key="solr")
    def articles() -> pa.Table:
        return pa.table({"id": ["a1", "a2"], "title": ["Hello", "Wörld"]})

    @dg.asset
    def titles(articles: pa.Table) -> list:
        return sorted(articles.column("title").to_pylist())

    with stand_in_solr() as url:
        result = dg.materialize([articles, titles], resources={"solr": SolrIOManager(url=url)})
        assert result.success and result.output_for_node("titles") == ["Hello", "Wörld"]
        assert [body for method, _, _, body in StandInSolr.requests if method == "POST"][0] == {"delete": {"query": "*:*"}}


@pytest.mark.skipif(not os.environ.get("ETL_TEST_SOLR_URL"), reason="ETL_TEST_SOLR_URL is not set")
def test_against_a_real_solr_core():
    url = os.environ["ETL_TEST_SOLR_URL"]
    marker = uuid.uuid4().hex[:8]
    SolrTarget(url=url).write(pa.table({"id": [f"{marker}-{i}" for i in range(30)]}), "append")
    found = SolrSource(url=url, query=f"id:{marker}-*", batch_size=7).read_table()
    assert found.num_rows == 30


def test_composite_keys_never_share_a_unique_key():
    """Issue 20, item 7: ("x|y", "z") and ("x", "y|z") were one document joined with `|`."""
    with stand_in_solr() as url:
        SolrTarget(url=url).write(pa.table({"a": ["x|y", "x"], "b": ["z", "y|z"]}), "upsert", ["a", "b"])
        sent = [body for _, _, _, body in StandInSolr.requests][0]
        assert [d["id"] for d in sent] == ['["x|y","z"]', '["x","y|z"]']
