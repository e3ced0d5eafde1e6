"""What every source is: a Dagster resource that streams Arrow record batches and remembers where it stopped.

A read is an :class:`Extraction`: iterate it for :class:`SourceBatch` es (an Arrow batch plus the records
that could not be converted, each with its position and the reason), then take ``state`` — where the
next read starts — and, once the batches are committed to the warehouse, call ``acknowledge()`` (queues
acknowledge messages or commit offsets there, never earlier). ``close()`` always runs; a queue gives
back what was not acknowledged.

The landing step (``sources/ingest.py``) does the same for every source: stage the batches, then swap
them into ``bronze.<name>`` together with the new state, in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Literal

import dagster as dg
import pyarrow as pa
from pydantic import Field

from etl_platform.errors import ClientConnectionError, ConfigurationError, invalid_configuration
from etl_platform.secrets import scrub

POSITION_COLUMN = "_source_position"
INGESTED_AT_COLUMN = "_ingested_at"
MESSAGE_ID_COLUMN = "_message_id"
LINEAGE_COLUMNS = (POSITION_COLUMN, INGESTED_AT_COLUMN)
RECORD_TEXT_LIMIT = 64 * 1024  # a quarantined record keeps at most this many characters of its text


@dataclass(frozen=True)
class Rejected:
    """A record that could not be converted: where it was, why, its text (cut at 64 KiB), and the file it came from
    (``part``: for sources that land by file, whose quarantine a changed file replaces)."""

    position: str
    reason: str
    record: str | None = None
    part: str | None = None

    def __post_init__(self):
        if self.record is not None and len(self.record) > RECORD_TEXT_LIMIT:
            object.__setattr__(self, "record", self.record[:RECORD_TEXT_LIMIT] + "…")


@dataclass
class SourceBatch:
    data: pa.RecordBatch | None
    rejected: list[Rejected] = field(default_factory=list)
    # replace_by_file: a file that turned out not to be readable as its format (corrupt, truncated, not UTF-8)
    # part-way through: the rows and rejected records of it this read yielded before are void; ``rejected`` then
    # holds one record naming the file and why, and the file lands no rows.
    unreadable_part: str | None = None


@dataclass(frozen=True)
class LandingPlan:
    """How a source's batches land in bronze (the write dispositions, docs/sources.md).

    ``replace``: the table becomes what was read (the whole object), and so does the source's quarantine.
    ``append``: every record read lands, identical records too. With ``keys`` (an identity the source gives:
    a message id, an offset) a record delivered again, in this read or a later one, lands once; without, what a
    cursor's window reads again is recognised by count (the n-th copy of a record lands when bronze holds fewer).
    ``merge``: by ``keys``, a record replaces bronze's rows of its key; within one read the last record of a
    key wins (the order the source yields them).
    ``replace_by_file``: ``keys`` is one column naming the file; a changed file's rows and quarantined records
    replace its old ones (an empty file leaves none), and a deleted file's leave (``Extraction.replaced_parts``).
    """

    mode: Literal["replace", "append", "merge", "replace_by_file"]
    keys: tuple[str, ...] = ()

    @property
    def part_column(self) -> str | None:
        """replace_by_file: the column naming the file a row came from."""
        return self.keys[0] if self.mode == "replace_by_file" else None

    def __post_init__(self):
        if self.mode in ("merge", "replace_by_file") and not self.keys:
            raise ConfigurationError(f"the {self.mode} disposition needs key columns")
        if self.mode == "replace_by_file" and len(self.keys) != 1:
            raise ConfigurationError("replace_by_file takes one column, the one naming the file")


class Extraction:
    """One read of a source. Subclasses implement ``_batches``; they may set ``state`` as they go."""

    def __init__(self, state: dict | None):
        self.state: dict = dict(state or {})
        # replace_by_file: the files whose rows this read replaces (changed, emptied or deleted)
        self.replaced_parts: list[str] = []

    def __iter__(self) -> Iterator[SourceBatch]:
        return self._batches()

    def _batches(self) -> Iterator[SourceBatch]:
        raise NotImplementedError

    def acknowledge(self) -> None:
        """Called once the batches are committed to the warehouse: acknowledge messages, commit offsets."""

    def close(self) -> None:
        """Always called last: release connections; unacknowledged messages go back to the queue."""

    def __enter__(self) -> "Extraction":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Source(dg.ConfigurableResource):
    """Base class of the readers. Each subclass reads one kind of system."""

    kind: ClassVar[str]
    # The reader's protocol beyond extract(): which setting names the object a job or a stream reads (table,
    # collection, index; None: the reader reads no named objects), and which names the incremental cursor column.
    object_setting: ClassVar[str | None] = None
    cursor_setting: ClassVar[str | None] = None
    # What a read after the first one delivers, whatever the settings: "object" (what the settings select: the
    # whole object, or with a cursor what changed since its mark), "changed_files" (the files new or changed since
    # the last read; the state names the others) or "messages" (what arrived since: a message is gone once
    # acknowledged and cannot be read again). A YAML job's target modes follow from it (jobs/model.py).
    delivers: ClassVar[Literal["object", "changed_files", "messages"]] = "object"

    batch_size: int = Field(default=50_000, gt=0, description="Rows per Arrow batch (memory is bounded by it).")
    timeout_seconds: float = Field(default=30.0, gt=0, description="Connect/read timeout: a dead host fails "
                                                                   "within it, never hangs.")

    def extract(self, state: dict | None = None) -> Extraction:
        """Start a read after ``state`` (the ``state`` of the previous read; ``None``: from the beginning)."""
        raise NotImplementedError

    def landing_plan(self) -> LandingPlan:
        return LandingPlan("replace")

    def stream(self, **settings: Any) -> "Source":
        """This connection narrowed to one stream (its object, cursor, key, …): declare the connection once,
        credentials through ``dg.EnvVar`` included, and give each asset its stream::

            crm = PostgresSource(host="db", database="crm", username="etl", password=dg.EnvVar("CRM_PASSWORD"))
            resources = {"orders_source": crm.stream(table="public.orders", cursor_column="updated_at"),
                         "customers_source": crm.stream(table="public.customers", primary_key=["id"])}

        A setting the reader does not have is refused, naming it (the ``SourceStreams`` component does the same
        from a ``defs.yaml``)."""
        unknown = sorted(set(settings) - set(type(self).model_fields))
        if unknown:
            raise ConfigurationError(f"{self.kind}: {', '.join(unknown)} {'is not a setting' if len(unknown) == 1 else 'are not settings'} "
                                     f"of this reader; it takes {', '.join(sorted(type(self).model_fields))}")
        # A new resource from the settings this one was given (EnvVars stay EnvVars, read when a run starts) and the
        # stream's: Dagster builds a resource again from what it was constructed with, so a model_copy's changes
        # would be lost at run time.
        given = {name: getattr(self, name) for name in self.model_fields_set}
        try:
            return type(self)(**{**given, **settings})
        except Exception as error:
            raise invalid_configuration(f"{self.kind} stream", error) from None

    def for_query(self, query: Any = None, params: Any = None) -> "Source":
        """This reader narrowed to seed 000's ``execute_query(query, params)`` / ``iter_batches(query, params)``:
        each reader says what a query and its parameters mean for it (SQL, a glob, a path, a collection, a search);
        this default, for readers without queries, is the reader itself."""
        return self

    def describe(self) -> str:
        """Where the source is, for logs and messages: never a password or token."""
        return self.kind

    def read_table(self, state: dict | None = None) -> pa.Table:
        """Everything :meth:`extract` yields as one table (for small reads and tests); rejected records raise."""
        with self.extract(state) as extraction:
            batches, rejected = [], []
            for batch in extraction:
                rejected += batch.rejected
                if batch.data is not None:
                    batches.append(batch.data)
        if rejected:
            first = rejected[0]
            raise ConfigurationError(f"{self.describe()}: {len(rejected)} record(s) could not be converted; "
                                     f"first at {first.position}: {first.reason}")
        if not batches:
            return pa.table({})
        return pa.Table.from_batches(batches).combine_chunks()


def unicode_problem(text: str) -> str | None:
    """Why ``text`` (a record as JSON) cannot be stored as text, or None: a lone UTF-16 surrogate (JSON may spell
    ``"\\ud800"``; UTF-8 cannot hold it, and every JSON query on a table holding one fails)."""
    if "\\u" in text:  # spelt as an escape (JSON's only spelling is a lower-case u): decode to see it
        try:
            text = json.dumps(json.loads(text), ensure_ascii=False)
        except (ValueError, RecursionError):
            return None  # not JSON: the caller's own check says so
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return (f"holds a lone UTF-16 surrogate ({text[error.start]!r} at character {error.start}): not valid "
                "Unicode text")
    return None


def connection_error(system: str, where: str, error: BaseException) -> ClientConnectionError:
    """The error for an unreachable system or a refused login: system, place, and the driver's words."""
    return ClientConnectionError(f"{system}: cannot connect to {where}: {first_line(error)}")


def first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:500]


def without_secrets(text: str, *secrets: str | None) -> str:
    """``text`` with every secret, in each of its spellings, replaced by ``***`` (drivers sometimes echo connection
    strings): ``etl_platform.secrets.scrub``."""
    return scrub(text, *secrets)


# ----------------------------------------------------------------------------- cursor values in the state

def encode_value(value: Any) -> Any:
    """A cursor value as JSON that :func:`decode_value` gives back with its type."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    raise ConfigurationError(f"a cursor column of type {type(value).__name__} cannot be used: use a number, "
                             "a date, a timestamp or a text column")


def decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        (kind, text), = value.items()
        return {"datetime": datetime.fromisoformat, "date": date.fromisoformat, "decimal": Decimal}[kind](text)
    return value


def minus_lookback(value: Any, lookback: float) -> Any:
    """The cursor value ``lookback`` before ``value`` (seconds for dates and timestamps, units for numbers)."""
    if not lookback or value is None:
        return value
    if isinstance(value, (datetime, date)):
        return value - timedelta(seconds=lookback)
    if isinstance(value, Decimal):
        return value - Decimal(str(lookback))
    if isinstance(value, (int, float)):
        return value - type(value)(lookback)
    raise ConfigurationError(f"lookback needs a numeric, date or timestamp cursor, not {value!r}")


def state_json(state: dict) -> str:
    return json.dumps(state, sort_keys=True, default=str)
