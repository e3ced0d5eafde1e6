"""The REST source against an HTTP server the test starts: each pagination style, authentication, retries."""

from __future__ import annotations

import base64
import json
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import duckdb
import pytest

from etl_platform.errors import ClientConnectionError, ConfigurationError, QueryError
from etl_platform.sources import RestApiSource, ingest
from etl_platform_tests.servers import http_server, silent_server

RECORDS = [{"id": i, "name": f"item {i}", "updated": f"2024-01-{i:02d}", "tags": ["x"] * (i % 3)} for i in range(1, 24)]
TOKEN, API_KEY = "tok-3f9a-secret", "key-77c1-secret"


class Api(BaseHTTPRequestHandler):
    calls: list = []
    failures: dict = {}

    def log_message(self, *args):
        pass

    def _send(self, status: int, body=None, headers: dict | None = None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        Api.calls.append((url.path, query, dict(self.headers)))
        size = int(query.get("per_page") or query.get("limit") or 5)
        records = [r for r in RECORDS if r["updated"] > query.get("since", "")]
        if url.path == "/pages":
            page = int(query.get("page", 1))
            return self._send(200, {"data": records[(page - 1) * size: page * size]})
        if url.path == "/offset":
            offset = int(query.get("offset", 0))
            return self._send(200, {"results": {"items": records[offset: offset + size]}})
        if url.path == "/cursor":
            start = int(query.get("cursor", 0))
            chunk = records[start: start + size]
            following = start + size if start + size < len(records) else None
            return self._send(200, {"items": chunk, "meta": {"next": following}})
        if url.path == "/link":
            page = int(query.get("page", 1))
            headers = {}
            if page * size < len(records):
                headers["Link"] = (f'<http://{self.headers["Host"]}/link?page={page + 1}&per_page={size}>; rel="next", '
                                   f'<http://{self.headers["Host"]}/link?page=1>; rel="first"')
            return self._send(200, records[(page - 1) * size: page * size], headers)
        if url.path == "/flaky":
            left = Api.failures.get("flaky", [])
            if left:
                status = left.pop(0)
                return self._send(status, {"error": "busy"}, {"Retry-After": "1"} if status == 429 else {})
            return self._send(200, RECORDS[:3])
        if url.path == "/secure":
            auth = self.headers.get("Authorization", "")
            ok = (auth == f"Bearer {TOKEN}" or self.headers.get("X-API-Key") == API_KEY
                  or query.get("api_key") == API_KEY
                  or auth == "Basic " + base64.b64encode(b"ana:pw-secret").decode())
            return self._send(200, RECORDS[:2]) if ok else self._send(401, {"error": "who are you"})
        if url.path == "/moving":  # offset paging while a record is inserted: record 5 is on both pages
            offset = int(query.get("offset", 0))
            if offset == 0:
                return self._send(200, [{"id": i, "v": "old"} for i in range(1, 6)])
            if offset == 5:
                return self._send(200, [{"id": 5, "v": "new"}] + [{"id": i, "v": "old"} for i in range(6, 9)])
            return self._send(200, [])
        if url.path == "/numeric":  # an incremental field holding numbers (and, for `mixed`, a text)
            since = float(query["since"]) if query.get("since", "").isdigit() else -1
            rows = [{"id": i, "seq": i * 10} for i in range(1, 16) if i * 10 > since]
            if query.get("mixed"):
                rows.append({"id": 99, "seq": "ten"})
            return self._send(200, rows)
        if url.path == "/cycle":  # a Link header leading A -> B -> A
            page = query.get("page", "a")
            following = "b" if page == "a" else "a"
            return self._send(200, [{"id": page}], {"Link": f'<http://{self.headers["Host"]}/cycle?page={following}>; '
                                                            'rel="next"'})
        if url.path == "/cycle-cursor":  # a cursor that comes back
            cursor = int(query.get("cursor", 1))
            return self._send(200, {"items": [{"id": cursor}], "meta": {"next": cursor % 3 + 1}})
        if url.path == "/trickle":  # a body sent one byte every 0.3 s
            data = json.dumps([{"id": 1}]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for byte in data:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.3)
            return None
        if url.path == "/surrogate":
            return self._send(200, [{"id": 1, "name": "ok"}, {"id": 2, "name": "bad \ud800 text"}])
        if url.path == "/missing-ids":
            return self._send(200, [{"id": 1}, {"name": "no id"}])
        return self._send(404, {"error": "no such endpoint"})


@contextmanager
def api_server():
    Api.calls, Api.failures = [], {}
    with http_server(Api) as url:
        yield url


def _ids(source: RestApiSource) -> list[int]:
    table = source.read_table()
    return [json.loads(text)["id"] for text in table.column("_record").to_pylist()]


@pytest.mark.parametrize("path, settings", [
    ("/pages", {"paginator": "page_number", "page_size": 5}),
    ("/offset", {"paginator": "offset", "page_size": 5, "record_path": "results.items"}),
    ("/cursor", {"paginator": "cursor", "page_size": 5, "cursor_path": "meta.next"}),
    ("/link", {"paginator": "link_header", "page_size": 5}),
])
def test_each_pagination_style_reads_every_record_once(path, settings):
    with api_server() as url:
        assert _ids(RestApiSource(base_url=url, path=path, **settings)) == list(range(1, 24))


def test_429_and_500_are_retried_honouring_retry_after():
    with api_server() as url:
        Api.failures["flaky"] = [429, 500, 503]
        started = time.monotonic()
        assert _ids(RestApiSource(base_url=url, path="/flaky", backoff_seconds=0.05)) == [1, 2, 3]
        assert time.monotonic() - started >= 1.0  # the Retry-After of the 429 was waited for
        assert len(Api.calls) == 4

        Api.failures["flaky"] = [500] * 10
        with pytest.raises(ClientConnectionError, match=r"/flaky answered 500 .* 3 time\(s\)"):
            RestApiSource(base_url=url, path="/flaky", max_retries=2, backoff_seconds=0.01).read_table()


@pytest.mark.parametrize("settings", [
    {"auth": "bearer", "token": TOKEN},
    {"auth": "api_key", "api_key": API_KEY},
    {"auth": "api_key", "api_key": API_KEY, "api_key_param": "api_key"},
    {"auth": "basic", "username": "ana", "password": "pw-secret"},
])
def test_authentication_styles(settings):
    with api_server() as url:
        assert _ids(RestApiSource(base_url=url, path="/secure", **settings)) == [1, 2]


def test_refused_credentials_are_clear_and_never_show_the_secret():
    with api_server() as url:
        for settings in ({"auth": "bearer", "token": "wrong-token-value"},
                         {"auth": "api_key", "api_key": "wrong-key-value", "api_key_param": "api_key"}):
            with pytest.raises(ClientConnectionError, match="refused the credentials") as error:
                RestApiSource(base_url=url, path="/secure", **settings).read_table()
            assert "wrong-token-value" not in str(error.value) and "wrong-key-value" not in str(error.value)
        with pytest.raises(ConfigurationError, match="needs `token`"):
            RestApiSource(base_url=url, path="/secure", auth="bearer").read_table()
        with pytest.raises(QueryError, match="404"):
            RestApiSource(base_url=url, path="/nothing").read_table()


def test_incremental_reads_send_the_mark_and_records_merge_by_key():
    with api_server() as url:
        source = RestApiSource(base_url=url, path="/pages", paginator="page_number", page_size=10,
                               primary_key=["id"], incremental_field="updated", incremental_param="since")
        warehouse = duckdb.connect()
        first = ingest(warehouse, source, "items")
        assert first.rows_written == 23 and first.state_after == {"cursor": "2024-01-23"}
        RECORDS.append({"id": 24, "name": "new", "updated": "2024-01-24", "tags": []})
        try:
            second = ingest(warehouse, source, "items")
        finally:
            RECORDS.pop()
        assert second.rows_read == 1 and Api.calls[-1][1]["since"] == "2024-01-23"
        assert warehouse.execute("SELECT count(*), count(DISTINCT _key) FROM bronze.items").fetchone() == (24, 24)
        assert warehouse.execute("SELECT _record->>'$.name' FROM bronze.items WHERE _key = '[24]'").fetchone() == \
            ("new",)


def test_an_api_that_ignores_the_page_parameter_is_caught_not_looped():
    with api_server() as url:
        with pytest.raises(QueryError, match="same records for page 2"):
            RestApiSource(base_url=url, path="/pages", paginator="page_number", page_param="p", page_size=5).read_table()


def test_records_without_their_key_are_quarantined():
    with api_server() as url:
        warehouse = duckdb.connect()
        result = ingest(warehouse, RestApiSource(base_url=url, path="/missing-ids", primary_key=["id"]), "things")
        assert (result.rows_written, result.rows_quarantined) == (1, 1)
        assert warehouse.execute("SELECT position, reason FROM bronze._source_quarantine").fetchone() == \
            ("page 1, record 2", "primary key id is missing or null")


def test_an_api_that_does_not_answer_fails_within_the_timeout():
    with silent_server() as port:
        started = time.monotonic()
        with pytest.raises(ClientConnectionError, match=r"could not be reached after 2 attempt\(s\) in \d"):
            RestApiSource(base_url=f"http://127.0.0.1:{port}", timeout_seconds=1, max_retries=1,
                          backoff_seconds=0.01).read_table()
        assert time.monotonic() - started < 10


def test_a_key_on_two_pages_lands_once_the_last_record_winning():
    """Issue 20, item 3: offset paging while data moves put record 5 on two pages; it stayed twice, run after run."""
    with api_server() as url:
        source = RestApiSource(base_url=url, path="/moving", paginator="offset", page_size=5, primary_key=["id"])
        warehouse = duckdb.connect()
        for run in range(2):
            ingest(warehouse, source, "moving")
            assert warehouse.execute("SELECT count(*), count(DISTINCT _key) FROM bronze.moving").fetchone() == (8, 8)
            assert warehouse.execute("SELECT _record->>'$.v' FROM bronze.moving WHERE _key = '[5]'").fetchone() == \
                ("new",)


def test_an_incremental_numeric_field_is_compared_as_a_number():
    """Issue 20, item 14: `initial_value="100"` for a numeric field, or a field mixing numbers and text, was a raw
    TypeError. The mark is read in the field's type; a mix fails naming the field and both values."""
    with api_server() as url:
        source = RestApiSource(base_url=url, path="/numeric", incremental_field="seq", incremental_param="since",
                               initial_value="100")
        warehouse = duckdb.connect()
        first = ingest(warehouse, source, "numeric")
        assert first.rows_written == 5 and first.state_after == {"cursor": 150}
        assert Api.calls[-1][1]["since"] == "100"
        assert ingest(warehouse, source, "numeric").rows_read == 0 and Api.calls[-1][1]["since"] == "150"
        mixed = source.model_copy(update={"params": {"mixed": "1"}, "initial_value": None})
        with pytest.raises(QueryError, match=r"incremental_field 'seq' holds 'ten' \(str\) and 150 \(int\)"):
            mixed.read_table()
        with pytest.raises(QueryError, match="holds the number 150 but the mark is the text 'soon'"):
            source.model_copy(update={"initial_value": "soon"}).read_table()


@pytest.mark.parametrize("path, settings", [
    ("/cycle", {"paginator": "link_header"}),
    ("/cycle-cursor", {"paginator": "cursor", "cursor_path": "meta.next"}),
])
def test_a_paginator_that_cycles_is_stopped_naming_the_page(path, settings):
    """Issue 20, item 16: a Link (or cursor) paginator going A -> B -> A paged forever."""
    with api_server() as url:
        with pytest.raises(QueryError, match=r"led back to page \d, already read: the pages cycle"):
            RestApiSource(base_url=url, path=path, **settings).read_table()
        assert len(Api.calls) <= 4


def test_a_trickled_body_is_cut_at_the_timeout():
    """Issue 20, item 16: httpx's timeout is per read, so a body sent a byte at a time ignored timeout_seconds=1."""
    with api_server() as url:
        started = time.monotonic()
        with pytest.raises(ClientConnectionError, match=r"after 1 attempt\(s\) in .* longer than 1 s"):
            RestApiSource(base_url=url, path="/trickle", timeout_seconds=1, max_retries=0).read_table()
        assert time.monotonic() - started < 2.5


def test_a_record_with_a_lone_surrogate_is_quarantined_and_the_page_lands():
    """Issue 20, item 17: "\\ud800" failed the whole read with UnicodeEncodeError."""
    with api_server() as url:
        warehouse = duckdb.connect()
        result = ingest(warehouse, RestApiSource(base_url=url, path="/surrogate"), "surrogates")
        assert (result.rows_written, result.rows_quarantined) == (1, 1)
        assert warehouse.execute("SELECT _record->>'$.name' FROM bronze.surrogates").fetchall() == [("ok",)]
        position, reason, record = warehouse.execute(
            "SELECT position, reason, record FROM bronze._source_quarantine").fetchone()
        assert position == "page 1, record 2" and "lone UTF-16 surrogate" in reason and "\\ud800" in record
