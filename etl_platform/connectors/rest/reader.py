"""REST APIs: pages of JSON records, with the pagination styles APIs use, authentication from the environment,
and retries that honour the server.

Each record lands as one ``_record`` JSON value (bronze keeps the API's document whole; silver SQL picks the
fields), with ``_source_position`` naming the page and the record. With ``primary_key`` (dotted paths into
the record) a ``_key`` column is added and a record replaces its older version in bronze; with
``incremental_field`` the highest value seen is kept and sent as ``incremental_param`` on the next run.

Pagination (``paginator``): ``page_number`` (``?page=1,2,...``), ``offset`` (``?offset=0&limit=N``),
``cursor`` (the next cursor read from the body at ``cursor_path``, sent as ``cursor_param``), ``link_header``
(RFC 8288 ``Link: <...>; rel="next"``) or ``none``. A page with no records ends the read.

429 and 5xx answers and network errors are retried with exponential backoff (``Retry-After`` wins when the
server sends it), up to ``max_retries``; then the read fails naming the URL (without credentials). Each attempt
has ``timeout_seconds`` for the whole answer (a body trickled a byte at a time is cut there, not only a silent
read), so a dead host fails within about ``(max_retries + 1) × timeout_seconds`` plus the backoff between
attempts (the error says how long it took). A paginator that leads back to a page already read (a ``Link`` or
cursor cycle) fails naming the page instead of paging forever.

A record holding a lone UTF-16 surrogate (``"\ud800"``: JSON can spell it, Unicode text cannot hold it) is
quarantined with the reason; every other record of the page lands. The incremental field is compared in its
own type: ``initial_value="100"`` for a numeric field is the number 100; a field holding numbers in one record
and text in another fails naming the field and both values.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from etl_platform.errors import ClientConnectionError, ConfigurationError, CredentialsRefusedError, QueryError
from etl_platform.secrets import basic_auth
from etl_platform.sources.base import POSITION_COLUMN, Extraction, LandingPlan, Rejected, Source, SourceBatch, \
    decode_value, encode_value, first_line, unicode_problem, without_secrets

RECORD_COLUMN = "_record"
KEY_COLUMN = "_key"
DEFAULT_RECORD_KEYS = ("data", "results", "items", "records")
MAX_BACKOFF_SECONDS = 60.0


class RestApiSource(Source):
    """Records from a JSON REST endpoint, page by page."""

    kind = "rest"

    base_url: str = Field(description="e.g. https://api.example.com/v1")
    path: str = Field(default="", description="Endpoint below base_url, e.g. /orders")
    params: dict[str, str] = Field(default_factory=dict, description="Query parameters sent with every request.")
    headers: dict[str, str] = Field(default_factory=dict)
    record_path: str | None = Field(default=None, description="Dotted path to the list of records in the body; "
                                                              "default: the body itself, or its data/results/items/"
                                                              "records list.")
    auth: Literal["none", "bearer", "api_key", "basic"] = "none"
    token: str | None = Field(default=None, repr=False)  # a secret: bearer token
    api_key: str | None = Field(default=None, repr=False)  # a secret
    api_key_header: str = "X-API-Key"
    api_key_param: str | None = Field(default=None, description="Send the API key as this query parameter instead "
                                                                "of a header.")
    username: str | None = None
    password: str | None = Field(default=None, repr=False)  # a secret
    paginator: Literal["none", "page_number", "offset", "cursor", "link_header"] = "none"
    page_param: str = "page"
    start_page: int = 1
    page_size: int | None = Field(default=None, description="Records per page asked of the API.")
    page_size_param: str = "per_page"
    offset_param: str = "offset"
    limit_param: str = "limit"
    cursor_path: str = Field(default="next_cursor", description="cursor paginator: dotted path of the next cursor.")
    cursor_param: str = "cursor"
    max_pages: int | None = None
    max_retries: int = Field(default=5, ge=0)
    backoff_seconds: float = Field(default=0.5, gt=0, description="First retry delay; doubles each retry.")
    primary_key: list[str] = Field(default_factory=list, description="Dotted paths of the record's key fields.")
    incremental_field: str | None = Field(default=None, description="Dotted path of a record field that grows "
                                                                    "(updated_at, id): its high-water mark is kept.")
    incremental_param: str | None = Field(default=None, description="Query parameter the mark is sent as.")
    initial_value: str | None = None

    def for_query(self, query: Any = None, params: Any = None) -> Source:
        """A path below ``base_url`` (``*``: the configured one), with query parameters added to the configured."""
        update = {"path": query} if query and query != "*" else {}
        if params:
            update["params"] = {**self.params, **{k: str(v) for k, v in dict(params).items()}}
        return self.model_copy(update=update)

    def describe(self) -> str:
        return self.url()

    def url(self) -> str:
        return self.base_url.rstrip("/") + ("/" + self.path.lstrip("/") if self.path else "")

    def landing_plan(self) -> LandingPlan:
        if self.primary_key:
            return LandingPlan("merge", (KEY_COLUMN,))
        # Without a key a record has no identity: identical records are distinct (append by count).
        return LandingPlan("append") if self.incremental_field else LandingPlan("replace")

    def extract(self, state: dict | None = None) -> Extraction:
        if bool(self.incremental_field) != bool(self.incremental_param):
            raise ConfigurationError("rest: set incremental_field and incremental_param together")
        return RestExtraction(self, state)

    def secrets(self) -> tuple[str | None, ...]:
        """What never leaves in an error: the token, the key, the password and the basic-auth header's base64 (an API
        may echo the request's headers)."""
        return self.token, self.api_key, self.password, basic_auth(self.username, self.password)

    def client(self):
        import httpx

        headers = dict(self.headers)
        auth = None
        if self.auth == "bearer":
            if not self.token:
                raise ConfigurationError("rest: auth 'bearer' needs `token` (from the environment: dg.EnvVar)")
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.auth == "api_key":
            if not self.api_key:
                raise ConfigurationError("rest: auth 'api_key' needs `api_key` (from the environment: dg.EnvVar)")
            if not self.api_key_param:
                headers[self.api_key_header] = self.api_key
        elif self.auth == "basic":
            if not self.username:
                raise ConfigurationError("rest: auth 'basic' needs `username` and `password`")
            auth = httpx.BasicAuth(self.username, self.password or "")
        return httpx.Client(headers=headers, auth=auth, timeout=self.timeout_seconds, follow_redirects=True)

    def request(self, client, url: str, params: dict) -> Any:
        """GET ``url`` and return the parsed JSON body, retrying 429, 5xx and network errors."""
        import httpx

        if self.auth == "api_key" and self.api_key_param:
            params = {**params, self.api_key_param: self.api_key}
        attempt, started = 0, time.monotonic()
        while True:
            try:
                response = self._get(client, url, params)
            except httpx.TransportError as error:
                if attempt >= self.max_retries:
                    raise ClientConnectionError(self._clean(
                        f"rest: {url} could not be reached after {attempt + 1} attempt(s) in "
                        f"{time.monotonic() - started:.1f} s (timeout_seconds={self.timeout_seconds:g} per attempt, "
                        f"max_retries={self.max_retries}): {first_line(error)}")) from error
                self._sleep(attempt, None)
                attempt += 1
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if attempt >= self.max_retries:
                    raise ClientConnectionError(self._clean(
                        f"rest: {url} answered {response.status_code} {response.reason_phrase} "
                        f"{attempt + 1} time(s): {response.text[:300]}"))
                self._sleep(attempt, response.headers.get("Retry-After"))
                attempt += 1
                continue
            if response.status_code in (401, 403):
                raise CredentialsRefusedError(self._clean(
                    f"rest: {url} refused the credentials ({response.status_code} {response.reason_phrase}, "
                    f"auth {self.auth}): {response.text[:300]}"))
            if response.status_code >= 400:
                raise QueryError(self._clean(f"rest: {url} answered {response.status_code} "
                                             f"{response.reason_phrase}: {response.text[:300]}"))
            try:
                return response, response.json()
            except ValueError as error:
                raise QueryError(self._clean(f"rest: {url} did not answer JSON ({response.headers.get('content-type')}"
                                             f"): {response.text[:200]!r}")) from error

    def _get(self, client, url: str, params: dict):
        """One GET whose whole answer (headers and body) must arrive within ``timeout_seconds``: httpx's timeouts
        are per network operation, so a body trickled a byte at a time would never time out."""
        import httpx

        deadline = time.monotonic() + self.timeout_seconds
        request = client.build_request("GET", url, params=params or None)  # {} would drop a next link's query
        response = client.send(request, stream=True)
        try:
            chunks = []
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout(f"the answer took longer than {self.timeout_seconds:g} s "
                                            f"(timeout_seconds)", request=request)
            response._content = b"".join(chunks)
        finally:
            response.close()
        return response

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff_seconds * 2**attempt * (1 + random.random() / 4)
        if retry_after:
            try:
                delay = float(retry_after)
            except ValueError:
                try:
                    delay = parsedate_to_datetime(retry_after).timestamp() - time.time()
                except (TypeError, ValueError):
                    pass
        time.sleep(min(max(delay, 0.0), MAX_BACKOFF_SECONDS))

    def _clean(self, text: str) -> str:
        return without_secrets(text, *self.secrets())

    def records_of(self, body: Any, url: str) -> list:
        if self.record_path:
            found = dig(body, self.record_path)
            if found is None:
                return []
            if not isinstance(found, list):
                raise QueryError(f"rest: {url}: record_path {self.record_path!r} holds a "
                                 f"{type(found).__name__}, not a list")
            return found
        if isinstance(body, list):
            return body
        if isinstance(body, dict):
            for key in DEFAULT_RECORD_KEYS:
                if isinstance(body.get(key), list):
                    return body[key]
        raise QueryError(f"rest: {url}: cannot find the records in the response (keys: "
                         f"{', '.join(body) if isinstance(body, dict) else type(body).__name__}); set record_path")


def dig(document: Any, path: str) -> Any:
    """The value at a dotted path (``a.b.0.c``), or None."""
    for part in path.split("."):
        if isinstance(document, dict):
            document = document.get(part)
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return None
    return document


def next_link(link_header: str | None) -> str | None:
    """The ``rel="next"`` target of an RFC 8288 ``Link`` header."""
    for part in (link_header or "").split(","):
        section = part.split(";")
        if len(section) > 1 and any(p.strip().replace('"', "") in ("rel=next",) for p in section[1:]):
            return section[0].strip().strip("<>")
    return None


class RestExtraction(Extraction):
    def __init__(self, source: RestApiSource, state: dict | None):
        super().__init__(state)
        self.source = source

    def _batches(self) -> Iterator[SourceBatch]:
        source = self.source
        mark = decode_value(self.state["cursor"]) if "cursor" in self.state else source.initial_value
        params: dict[str, Any] = dict(source.params)
        if source.incremental_param and mark is not None:
            params[source.incremental_param] = mark
        if source.page_size:
            params[source.limit_param if source.paginator == "offset" else source.page_size_param] = source.page_size
        url: str | None = source.url()
        page, offset = source.start_page, 0
        if source.paginator == "page_number":
            params[source.page_param] = page
        if source.paginator == "offset":
            params[source.offset_param] = offset
        pages = 0
        highest = mark
        initial = mark if "cursor" not in self.state else None  # initial_value: text, read in the field's type
        previous_page = None
        requested: dict[str, int] = {}
        with source.client() as client:
            while url:
                request_key = json.dumps([url, sorted((str(k), str(v)) for k, v in params.items())])
                if request_key in requested:
                    raise QueryError(f"rest: {url} (params {params}): the {source.paginator} paginator led back to "
                                     f"page {requested[request_key]}, already read: the pages cycle; stopped after "
                                     f"{pages} page(s)")
                requested[request_key] = pages + 1
                response, body = source.request(client, url, params)
                records = source.records_of(body, url)
                pages += 1
                if records and records == previous_page:
                    raise QueryError(f"rest: {url} returned the same records for page {pages} as for the page before: "
                                     f"the API ignores the {source.paginator} parameters (check "
                                     f"{source.page_param if source.paginator == 'page_number' else 'the paginator settings'})")
                previous_page = records
                label = {"page_number": f"page {page}", "offset": f"offset {offset}"}.get(source.paginator,
                                                                                        f"page {pages}")
                batch, rejected, top = self._batch(records, label)
                if top is not None and (highest is None or _greater(top, highest, source.incremental_field,
                                                                     from_setting=highest is initial)):
                    highest = top
                yield SourceBatch(batch, rejected)
                if not records or (source.max_pages and pages >= source.max_pages):
                    break
                if source.paginator == "page_number":
                    page += 1
                    params[source.page_param] = page
                elif source.paginator == "offset":
                    offset += len(records)
                    params[source.offset_param] = offset
                elif source.paginator == "cursor":
                    cursor = dig(body, source.cursor_path) if isinstance(body, dict) else None
                    if not cursor:
                        break
                    params[source.cursor_param] = cursor
                elif source.paginator == "link_header":
                    url = next_link(response.headers.get("link"))
                    params = {}  # the next link carries its own query
                else:
                    break
        if source.incremental_field and highest is not None:
            self.state["cursor"] = encode_value(highest)

    def _batch(self, records: list, label: str) -> tuple[pa.RecordBatch, list[Rejected], Any]:
        source = self.source
        texts, positions, keys, rejected, top = [], [], [], [], None
        for index, record in enumerate(records, start=1):
            position = f"{label}, record {index}"
            text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
            problem = unicode_problem(text)
            if problem:
                rejected.append(Rejected(position, problem, json.dumps(record, separators=(",", ":"))))
                continue
            if source.primary_key:
                key = [dig(record, path) for path in source.primary_key]
                if any(value is None for value in key):
                    rejected.append(Rejected(position, f"primary key {', '.join(source.primary_key)} is missing "
                                             "or null", text))
                    continue
                keys.append(json.dumps(key, separators=(",", ":")))
            if source.incremental_field:
                value = dig(record, source.incremental_field)
                if value is not None and (top is None or _greater(value, top, source.incremental_field)):
                    top = value
            texts.append(text)
            positions.append(position)
        arrays = [pa.array(texts, pa.json_()), pa.array(positions, pa.string())]
        names = [RECORD_COLUMN, POSITION_COLUMN]
        if source.primary_key:
            arrays.append(pa.array(keys, pa.string()))
            names.append(KEY_COLUMN)
        return pa.RecordBatch.from_arrays(arrays, names=names), rejected, top


def _greater(value: Any, than: Any, field: str, from_setting: bool = False) -> bool:
    """``value > than`` for the incremental field, compared in the field's type: a mark given as text in the
    settings (``initial_value``, ``from_setting``) is read as a number when the field holds numbers; numbers
    against text in the records fail naming both."""
    if from_setting and isinstance(than, str) and isinstance(value, (int, float)) and not isinstance(value, bool):
        than = _number(than, field, value)
    try:
        return value > than
    except TypeError:
        raise QueryError(f"rest: incremental_field {field!r} holds {value!r} ({type(value).__name__}) and "
                         f"{than!r} ({type(than).__name__}): they cannot be compared; the field must hold one type "
                         "(numbers, or ISO timestamps as text)") from None


def _number(text: str, field: str, other: Any) -> float | int:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise QueryError(f"rest: incremental_field {field!r} holds the number {other!r} but the mark is the text "
                             f"{text!r}: set initial_value to a number, or compare a field of one type") from None
