"""RabbitMQ: messages of one queue, acknowledged only after they are committed to bronze (pika).

``_message_id`` is the message's ``message_id`` property; a publisher that sets none gets a digest of the
message (exchange, routing key, headers, timestamp, body), so two messages identical in all of these count
as one — set ``message_id`` when that matters. A run takes at most 65,535 messages (AMQP's largest prefetch
count: the messages stay unacknowledged until the commit); the sensor starts the next run for the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

from pydantic import Field

from etl_platform.errors import ClientConnectionError, CredentialsRefusedError, QueryError
from etl_platform.extras import require
from etl_platform.sources.base import Extraction, SourceBatch, first_line, without_secrets
from etl_platform.sources.queues import Message, QueueSource, content_id

MAX_UNACKNOWLEDGED = 65_535  # AMQP's largest prefetch count: the most messages one run takes


class RabbitMQSource(QueueSource):
    """A RabbitMQ queue."""

    kind = "rabbitmq"

    host: str = "127.0.0.1"
    port: int = 5672
    virtual_host: str = "/"
    username: str = "guest"
    password: str | None = Field(default=None, repr=False)  # a secret
    queue: str = Field(description="The queue to consume (it must exist).")

    def describe(self) -> str:
        return f"amqp://{self.username}@{self.host}:{self.port}{self.virtual_host} queue {self.queue}"

    def connect(self):
        pika = require("pika", "RabbitMQSource")

        parameters = pika.ConnectionParameters(
            host=self.host, port=self.port, virtual_host=self.virtual_host,
            credentials=pika.PlainCredentials(self.username, self.password or ""),
            socket_timeout=self.timeout_seconds, blocked_connection_timeout=self.timeout_seconds,
            connection_attempts=1, heartbeat=60,
        )
        try:
            return pika.BlockingConnection(parameters)
        except pika.exceptions.ProbableAuthenticationError as error:
            raise CredentialsRefusedError(f"rabbitmq: {self.host}:{self.port} refused the login of {self.username}: "
                                        f"{without_secrets(first_line(error), self.password)}") from error
        except pika.exceptions.AMQPError as error:
            raise ClientConnectionError(f"rabbitmq: cannot connect to {self.host}:{self.port}{self.virtual_host} as "
                                        f"{self.username}: {without_secrets(repr(error), self.password)}") from error

    def check_connection(self) -> None:
        self.pending_messages()

    def pending_messages(self) -> int:
        """Messages ready in the queue now (for sensors)."""
        connection = self.connect()
        try:
            return self._declare(connection.channel()).method.message_count
        finally:
            connection.close()

    def _declare(self, channel):
        pika = require("pika", "RabbitMQSource")

        try:
            return channel.queue_declare(self.queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as error:
            raise QueryError(f"rabbitmq: queue {self.queue!r} on {self.host}:{self.port}{self.virtual_host}: "
                             f"{error.reply_text}") from error

    def extract(self, state: dict | None = None) -> Extraction:
        return RabbitMQExtraction(self, state)


class RabbitMQExtraction(Extraction):
    def __init__(self, source: RabbitMQSource, state: dict | None):
        super().__init__(state)
        self.source = source
        self.connection = None
        self.channel = None
        self.last_tag = None

    def _batches(self) -> Iterator[SourceBatch]:
        pika = require("pika", "RabbitMQSource")

        source = self.source
        self.connection = source.connect()
        self.channel = self.connection.channel()
        source._declare(self.channel)
        # Messages stay unacknowledged until bronze commits, and the broker stops delivering at the prefetch
        # count: it bounds a run (AMQP allows at most 65,535) and the memory the client holds for it.
        self.channel.basic_qos(prefetch_count=min(source.max_messages, MAX_UNACKNOWLEDGED))
        messages, taken = [], 0
        try:
            for method, properties, body in self.channel.consume(source.queue, inactivity_timeout=source.wait_seconds):
                if method is None:  # quiet for wait_seconds
                    break
                self.last_tag = method.delivery_tag
                taken += 1
                headers = dict(properties.headers or {})
                published = (datetime.fromtimestamp(properties.timestamp, timezone.utc)
                             if properties.timestamp else None)
                message_id = properties.message_id or content_id(method.exchange, method.routing_key, headers,
                                                                 properties.timestamp, bytes(body))
                # The position is the queue: a delivery tag names a delivery, not the message, and changes when
                # the message comes back (a quarantined message is recognised by queue, id and text).
                messages.append(Message(
                    message_id, bytes(body), source.queue, published,
                    {"exchange": method.exchange, "routing_key": method.routing_key, "redelivered": method.redelivered,
                     "headers": headers, "content_type": properties.content_type}))
                if len(messages) >= source.batch_size:
                    yield source.to_batch(messages)
                    messages = []
                if taken >= min(source.max_messages, MAX_UNACKNOWLEDGED):
                    break
        except pika.exceptions.AMQPError as error:
            raise ClientConnectionError(f"rabbitmq: the connection to {source.host}:{source.port} failed after "
                                        f"{taken} message(s) of queue {source.queue}: {error!r}") from error
        yield source.to_batch(messages)
        self.state = {"messages_taken": taken}

    def acknowledge(self) -> None:
        if self.channel is not None and self.last_tag is not None:
            self.channel.basic_ack(delivery_tag=self.last_tag, multiple=True)
            self.last_tag = None

    def close(self) -> None:
        """Messages not acknowledged go back to the queue when the channel closes."""
        if self.connection is not None:
            try:
                if self.channel is not None and self.channel.is_open:
                    self.channel.cancel()
                self.connection.close()
            except Exception:
                pass
            self.connection = self.channel = None
