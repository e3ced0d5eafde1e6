"""Kafka: records of one or more topics, with the consumer group's offsets committed only after bronze has
committed (confluent-kafka).

``_message_id`` is ``topic:partition:offset``, which names a record exactly, so a record read again after a
crash between the two commits is recognised and not inserted twice. A run assigns itself every partition of the
topics, starting at the group's committed offsets: no consumer-group join (seconds per run), offsets still kept
by the group. The record's key, headers, partition,
offset and timestamp go to ``_attributes`` / ``_published_at``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone

from pydantic import Field

from etl_platform.errors import ClientConnectionError, QueryError
from etl_platform.extras import require
from etl_platform.sources.base import Extraction, SourceBatch, without_secrets
from etl_platform.sources.queues import Message, QueueSource


class KafkaSource(QueueSource):
    """Kafka topics read by a consumer group."""

    kind = "kafka"

    bootstrap_servers: str = Field(description="host:port[,host:port...]")
    topics: list[str]
    group_id: str = Field(description="The consumer group whose committed offsets say where a run starts.")
    auto_offset_reset: str = Field(default="earliest", description="Where a new group starts: earliest or latest.")
    security_protocol: str | None = Field(default=None, description="PLAINTEXT, SSL, SASL_SSL, ...")
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = Field(default=None, repr=False)  # a secret
    join_timeout_seconds: float = Field(default=60.0, gt=0, description="How long to wait for the group's committed "
                                                                        "offsets before the run fails.")

    def describe(self) -> str:
        return f"kafka {self.bootstrap_servers} topics {', '.join(self.topics)} (group {self.group_id})"

    def consumer_config(self) -> dict:
        config = {"bootstrap.servers": self.bootstrap_servers, "group.id": self.group_id,
                  "enable.auto.commit": False, "auto.offset.reset": self.auto_offset_reset,
                  "socket.timeout.ms": int(self.timeout_seconds * 1000),
                  "session.timeout.ms": 45_000, "enable.partition.eof": True}
        if self.security_protocol:
            config["security.protocol"] = self.security_protocol
        if self.sasl_mechanism:
            config.update({"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.sasl_username or "",
                           "sasl.password": self.sasl_password or ""})
        return config

    def extract(self, state: dict | None = None) -> Extraction:
        return KafkaExtraction(self, state)

    def check_connection(self) -> None:
        self.check_reachable()

    def pending_messages(self) -> int:
        """The group's consumer lag (for sensors): per partition of the topics, the high watermark minus the
        group's committed offset (a partition the group never committed counts from where ``auto_offset_reset``
        would start it). Reads offsets only: no group join, no rebalance of a running consumer."""
        require("confluent_kafka", "KafkaSource")
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        metadata = self.check_reachable()
        consumer = Consumer(self.consumer_config())
        try:
            partitions = [TopicPartition(topic, number) for topic in self.topics
                          for number in sorted(metadata.topics[topic].partitions)]
            lag = 0
            for partition in consumer.committed(partitions, timeout=self.timeout_seconds):
                start, end = self.unread(consumer, partition)
                lag += max(end - start, 0)
            return lag
        except KafkaException as error:
            raise ClientConnectionError(f"kafka: cannot read the offsets of group {self.group_id} on "
                                        f"{self.bootstrap_servers}: "
                                        f"{without_secrets(str(error), self.sasl_password)[:300]}") from error
        finally:
            consumer.close()

    def unread(self, consumer, committed) -> tuple[int, int]:
        """``(first unread offset, high watermark)`` of a partition, from the group's committed offset (a
        partition the group never committed starts where ``auto_offset_reset`` says)."""
        low, high = consumer.get_watermark_offsets(committed, timeout=self.timeout_seconds, cached=False)
        if committed.offset >= 0:
            return committed.offset, high
        return (low if self.auto_offset_reset == "earliest" else high), high

    def check_reachable(self):
        """The cluster's metadata, once every topic is known to exist."""
        require("confluent_kafka", "KafkaSource")
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({k: v for k, v in self.consumer_config().items()
                             if k in ("bootstrap.servers", "security.protocol", "sasl.mechanism", "sasl.username",
                                      "sasl.password")})
        try:
            metadata = admin.list_topics(timeout=self.timeout_seconds)
        except Exception as error:
            raise ClientConnectionError(f"kafka: cannot reach {self.bootstrap_servers} within "
                                        f"{self.timeout_seconds:g} s: "
                                        f"{without_secrets(str(error), self.sasl_password)[:300]}") from error
        missing = [t for t in self.topics if t not in metadata.topics]
        if missing:
            raise QueryError(f"kafka: topic(s) {', '.join(missing)} do not exist on {self.bootstrap_servers}")
        return metadata


class KafkaExtraction(Extraction):
    def __init__(self, source: KafkaSource, state: dict | None):
        super().__init__(state)
        self.source = source
        self.consumer = None
        self.positions: dict[tuple[str, int], int] = {}  # the offset after the last record read, per partition
        self.starts: dict[tuple[str, int], int] = {}  # the first offset this run reads, per partition

    def _batches(self) -> Iterator[SourceBatch]:
        require("confluent_kafka", "KafkaSource")
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

        source = self.source
        metadata = source.check_reachable()
        self.consumer = Consumer(source.consumer_config())
        # Every partition of the topics is assigned directly, from the group's committed offsets (or where
        # auto_offset_reset says for a partition the group never committed): no group join, which costs seconds
        # per run (~25 s on some brokers). Two runs of one source at once would read the same records; bronze
        # keeps one row per topic:partition:offset, and the sensor never starts a second run anyway.
        partitions = [TopicPartition(topic, number) for topic in source.topics
                      for number in sorted(metadata.topics[topic].partitions)]
        try:
            committed = self.consumer.committed(partitions, timeout=source.join_timeout_seconds)
        except KafkaException as error:
            raise ClientConnectionError(f"kafka: cannot read the offsets of group {source.group_id} on "
                                        f"{source.bootstrap_servers} within {source.join_timeout_seconds:g} s: "
                                        f"{without_secrets(str(error), source.sasl_password)[:300]}") from error
        reset = OFFSET_BEGINNING if source.auto_offset_reset == "earliest" else OFFSET_END
        self.consumer.assign([TopicPartition(p.topic, p.partition, p.offset if p.offset >= 0 else reset)
                              for p in committed])
        # A run reads at least every record that was in the topics when it began: each partition up to its high
        # watermark of now, or until the broker reports the partition's end (quiet for wait_seconds alone could end
        # a run before a partition's first fetch came back, leaving a record that was there to a later run). Then
        # it waits wait_seconds for more.
        try:
            unread = {(p.topic, p.partition): source.unread(self.consumer, p) for p in committed}
        except KafkaException as error:
            raise ClientConnectionError(f"kafka: cannot read the high watermarks of {source.describe()}: "
                                        f"{without_secrets(str(error), source.sasl_password)[:300]}") from error
        self.starts = {place: start for place, (start, _) in unread.items()}
        behind = {place: end for place, (start, end) in unread.items() if start < end}
        messages, taken = [], 0
        quiet_since, progress_at = None, time.monotonic()
        while taken < source.max_messages:
            record = self.consumer.poll(timeout=0.5)
            if record is None:
                now = time.monotonic()
                if behind:
                    behind = {tp: end for tp, end in behind.items() if self._position(tp) < end}
                if behind:
                    if now - progress_at >= source.timeout_seconds:
                        late = ", ".join(f"{t}[{p}] (at offset {self._position((t, p))}, records up to {end - 1})"
                                         for (t, p), end in sorted(behind.items()))
                        raise ClientConnectionError(
                            f"kafka: reading {source.describe()}: no record arrived within {source.timeout_seconds:g} s "
                            f"(timeout_seconds) from partition(s) holding unread records: {late}")
                    continue
                quiet_since = quiet_since or now
                if now - quiet_since >= source.wait_seconds:
                    break
                continue
            quiet_since, progress_at = None, time.monotonic()
            if record.error():
                if record.error().code() == KafkaError._PARTITION_EOF:  # at the end, past any transaction marker
                    behind.pop((record.topic(), record.partition()), None)
                    continue
                raise ClientConnectionError(f"kafka: reading {source.describe()} failed: {record.error()}")
            taken += 1
            topic, partition, offset = record.topic(), record.partition(), record.offset()
            self.positions[(topic, partition)] = offset + 1
            kind, millis = record.timestamp()
            published = datetime.fromtimestamp(millis / 1000, timezone.utc) if kind and millis > 0 else None
            key = record.key()
            messages.append(Message(
                f"{topic}:{partition}:{offset}", record.value() or b"", f"{topic}[{partition}]@{offset}", published,
                {"topic": topic, "partition": partition, "offset": offset,
                 "key": key.decode("utf-8", errors="backslashreplace") if key else None,
                 "headers": {k: (v.decode("utf-8", errors="backslashreplace") if v else None)
                             for k, v in (record.headers() or [])}}))
            if len(messages) >= source.batch_size:
                yield source.to_batch(messages)
                messages = []
        yield source.to_batch(messages)
        self.state = {"offsets": {f"{t}:{p}": o for (t, p), o in sorted(self.positions.items())}}

    def _position(self, topic_partition: tuple[str, int]) -> int:
        """The offset this run will read next in a partition (past transaction markers and compacted gaps)."""
        from confluent_kafka import TopicPartition

        (position,) = self.consumer.position([TopicPartition(*topic_partition)])
        return max(self.positions.get(topic_partition, -1), position.offset, self.starts[topic_partition])

    def acknowledge(self) -> None:
        require("confluent_kafka", "KafkaSource")
        from confluent_kafka import TopicPartition

        if self.consumer is not None and self.positions:
            self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in self.positions.items()],
                                 asynchronous=False)
            self.positions = {}

    def close(self) -> None:
        if self.consumer is not None:
            try:
                self.consumer.close()
            except Exception:
                pass
            self.consumer = None
