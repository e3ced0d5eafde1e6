"""What the message-queue readers share: consume in batches, acknowledge only after bronze has committed.

A run takes up to ``max_messages`` (waiting at most ``wait_seconds`` for more once the queue is quiet).
The messages land in bronze with ``_message_id``; only after that commit are they acknowledged (RabbitMQ
``basic_ack``, SQS ``DeleteMessage``, Kafka offset commit). A crash before the commit leaves them
unacknowledged, so they are delivered again: no loss. A crash between the commit and the
acknowledgement redelivers messages already in bronze: their ``_message_id`` is there, so they are not
inserted twice: no duplicate.

Payloads: ``json`` (default) lands the message as a ``_record`` JSON value; ``text`` as a ``_body`` string.
A message that is not UTF-8 (or, for ``json``, not JSON) is a poison message: it goes to the quarantine
with the reason and its bytes (escaped), and is acknowledged with the batch so it is not redelivered forever.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from etl_platform.sources.base import MESSAGE_ID_COLUMN, POSITION_COLUMN, LandingPlan, Rejected, Source, SourceBatch, \
    unicode_problem

RECORD_COLUMN = "_record"
BODY_COLUMN = "_body"
ATTRIBUTES_COLUMN = "_attributes"
PUBLISHED_AT_COLUMN = "_published_at"


@dataclass
class Message:
    message_id: str
    body: bytes
    position: str
    published_at: datetime | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


class QueueSource(Source):
    """Base class of the queue readers."""

    delivers = "messages"

    max_messages: int = Field(default=100_000, gt=0, description="Most messages one run takes.")
    wait_seconds: float = Field(default=2.0, ge=0, description="How long to wait for a message before the run "
                                                               "ends with what it has.")
    payload: Literal["json", "text"] = Field(default="json", description="json: _record JSON; text: _body string.")

    def for_query(self, query: Any = None, params: Any = None) -> Source:
        """Queues take no query; ``params`` are further settings."""
        return self.model_copy(update=dict(params or {}))

    def landing_plan(self) -> LandingPlan:
        return LandingPlan("append", (MESSAGE_ID_COLUMN,))

    def to_batch(self, messages: Iterable[Message]) -> SourceBatch:
        """Messages as one Arrow batch; poison messages as rejected records."""
        ids, payloads, positions, published, attributes, rejected = [], [], [], [], [], []
        for message in messages:
            problem, text = decode(message.body, self.payload)
            if problem:
                rejected.append(Rejected(f"{message.position} (message {message.message_id})", problem, text))
                continue
            ids.append(message.message_id)
            payloads.append(text)
            positions.append(message.position)
            published.append(message.published_at)
            attributes.append(json.dumps(message.attributes, default=str, ensure_ascii=False, sort_keys=True))
        payload_column = (RECORD_COLUMN, pa.json_()) if self.payload == "json" else (BODY_COLUMN, pa.string())
        batch = pa.RecordBatch.from_arrays(
            [pa.array(ids, pa.string()), pa.array(payloads, payload_column[1]), pa.array(attributes, pa.json_()),
             pa.array(published, pa.timestamp("us", tz="UTC")), pa.array(positions, pa.string())],
            names=[MESSAGE_ID_COLUMN, payload_column[0], ATTRIBUTES_COLUMN, PUBLISHED_AT_COLUMN, POSITION_COLUMN],
        )
        return SourceBatch(batch, rejected)


def decode(body: bytes, payload: str) -> tuple[str | None, str]:
    """``(problem, text)``: the problem is None for a good message; text is the payload, or the escaped bytes."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"not UTF-8 text (byte {error.start}: {body[error.start:error.start + 1]!r})", \
            body[:4096].decode("utf-8", errors="backslashreplace")
    if payload == "json":
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            return f"not JSON: {error}", text
    return unicode_problem(text), text


def content_id(*parts: Any) -> str:
    """A message id for systems whose publishers set none: a digest of what the message is."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else json.dumps(part, default=str, sort_keys=True).encode())
        digest.update(b"\x00")
    return "sha256:" + digest.hexdigest()[:32]
