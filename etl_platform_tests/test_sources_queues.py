"""Queue sources against real brokers: the machine's RabbitMQ, moto's SQS/SNS, the tansu Kafka broker.

A crash *before* the bronze commit is the extraction closed without ``acknowledge`` (what a dying process
leaves: its connection drops, nothing acknowledged). A crash *after* the commit is ``acknowledge`` failing
once the rows are committed. Either way the next run must end with every message exactly once.
"""

from __future__ import annotations

import json
import uuid

import boto3
import dagster as dg
import duckdb
import pika
import pytest

from etl_platform.errors import ClientConnectionError, QueryError
from etl_platform.sources import KafkaSource, RabbitMQSource, SQSSource, ingest, source_asset, source_sensor
from etl_platform.warehouse import DuckDBWarehouse
from etl_platform_tests.servers import kafka_broker, kafka_broker_behind_proxy, moto_s3, require_service


class Crash(RuntimeError):
    pass


def _crash_after_commit(monkeypatch, extraction_class) -> None:
    def acknowledge(self):
        raise Crash("the process died after the bronze commit")

    monkeypatch.setattr(extraction_class, "acknowledge", acknowledge)


def _count(warehouse, table: str) -> tuple[int, int]:
    return warehouse.execute(f"SELECT count(*), count(DISTINCT _message_id) FROM {table}").fetchone()


# ----------------------------------------------------------------------------- RabbitMQ

def test_rabbitmq_lands_messages_quarantines_poison_and_drains_the_queue(rabbit_queue):
    name, publish, channel = rabbit_queue
    publish([json.dumps({"n": i, "text": "é"}).encode() for i in range(248)] + [b"\xff\xfe not utf-8", b"not json"])
    warehouse = duckdb.connect()
    result = ingest(warehouse, RabbitMQSource(queue=name, password="guest", batch_size=100, wait_seconds=0.5), "events")
    assert (result.rows_written, result.rows_quarantined) == (248, 2)
    assert _count(warehouse, "bronze.events") == (248, 248)
    reasons = [r[0] for r in warehouse.execute("SELECT reason FROM bronze._source_quarantine ORDER BY reason").fetchall()]
    assert reasons[0].startswith("not JSON") and reasons[1].startswith("not UTF-8 text (byte 0")
    assert channel.queue_declare(name, passive=True).method.message_count == 0


def test_rabbitmq_crash_before_commit_loses_nothing(rabbit_queue):
    name, publish, channel = rabbit_queue
    publish([json.dumps({"n": i}).encode() for i in range(30)])
    source = RabbitMQSource(queue=name, password="guest", wait_seconds=0.5)
    with source.extract() as extraction:
        assert sum(b.data.num_rows for b in extraction) == 30  # read, then the "process" dies: no commit, no ack
    warehouse = duckdb.connect()
    assert ingest(warehouse, source, "events").rows_written == 30
    assert _count(warehouse, "bronze.events") == (30, 30)


def test_rabbitmq_crash_after_commit_does_not_duplicate(rabbit_queue, monkeypatch):
    from etl_platform.connectors.rabbitmq.reader import RabbitMQExtraction

    name, publish, channel = rabbit_queue
    publish([json.dumps({"n": i}).encode() for i in range(20)], with_ids=False)
    source = RabbitMQSource(queue=name, password="guest", wait_seconds=0.5)
    warehouse = duckdb.connect()
    with monkeypatch.context() as patch:
        _crash_after_commit(patch, RabbitMQExtraction)
        with pytest.raises(Crash):
            ingest(warehouse, source, "events")
    assert _count(warehouse, "bronze.events") == (20, 20)  # committed, not acknowledged
    publish([json.dumps({"n": "late"}).encode()])
    again = ingest(warehouse, source, "events")
    assert again.rows_read == 21 and again.rows_written == 1  # the 20 came back and were recognised
    assert _count(warehouse, "bronze.events") == (21, 21)
    assert channel.queue_declare(name, passive=True).method.message_count == 0


def test_rabbitmq_refused_login_and_missing_queue():
    require_service("RabbitMQ", 5672)
    with pytest.raises(ClientConnectionError, match="refused the login of guest") as error:
        RabbitMQSource(queue="x", password="not-the-password").read_table()
    assert "not-the-password" not in str(error.value)
    with pytest.raises(QueryError, match="queue 'no_such_queue_here'"):
        RabbitMQSource(queue="no_such_queue_here", password="guest").read_table()


# ----------------------------------------------------------------------------- SQS and SNS

@pytest.fixture
def sqs():
    with moto_s3() as endpoint:  # one moto server speaks S3, SQS and SNS
        settings = {"endpoint_url": endpoint, "region": "us-east-1", "aws_access_key_id": "k",
                    "aws_secret_access_key": "s"}
        client = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k",
                              aws_secret_access_key="s")
        yield client, settings


def test_sqs_lands_messages_and_deletes_them_only_after_the_commit(sqs, monkeypatch):
    from etl_platform.connectors.sqs.reader import SQSExtraction

    client, settings = sqs
    url = client.create_queue(QueueName="orders")["QueueUrl"]
    for i in range(25):
        client.send_message(QueueUrl=url, MessageBody=json.dumps({"order": i}))
    client.send_message(QueueUrl=url, MessageBody="{broken")
    source = SQSSource(queue_url=url, wait_seconds=1, visibility_timeout_seconds=1, **settings)
    warehouse = duckdb.connect()
    with monkeypatch.context() as patch:
        _crash_after_commit(patch, SQSExtraction)
        with pytest.raises(Crash):
            ingest(warehouse, source, "orders")
    assert _count(warehouse, "bronze.orders") == (25, 25)
    import time

    time.sleep(1.5)  # the visibility timeout passes: SQS delivers the undeleted messages again
    again = ingest(warehouse, source, "orders")
    assert again.rows_written == 0 and again.rows_read == 25
    assert _count(warehouse, "bronze.orders") == (25, 25)
    assert warehouse.execute("SELECT count(*) FROM bronze._source_quarantine WHERE reason LIKE 'not JSON%'"
                             ).fetchone()[0] == 1  # the poison message, delivered twice, quarantined once
    assert int(client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"]) == 0


def test_sqs_crash_before_commit_loses_nothing(sqs):
    client, settings = sqs
    url = client.create_queue(QueueName="payments")["QueueUrl"]
    for i in range(12):
        client.send_message(QueueUrl=url, MessageBody=json.dumps({"payment": i}))
    source = SQSSource(queue_url=url, wait_seconds=1, visibility_timeout_seconds=1, **settings)
    with source.extract() as extraction:
        assert sum(b.data.num_rows for b in extraction) == 12  # read, then the "process" dies: nothing deleted
    import time

    time.sleep(1.5)
    warehouse = duckdb.connect()
    assert ingest(warehouse, source, "payments").rows_written == 12
    assert _count(warehouse, "bronze.payments") == (12, 12)


def test_sns_notifications_delivered_to_sqs_are_unwrapped(sqs):
    client, settings = sqs
    sns = boto3.client("sns", endpoint_url=settings["endpoint_url"], region_name="us-east-1", aws_access_key_id="k",
                       aws_secret_access_key="s")
    topic = sns.create_topic(Name="events")["TopicArn"]
    url = client.create_queue(QueueName="events-queue")["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    published = sns.publish(TopicArn=topic, Message=json.dumps({"kind": "signup"}), Subject="hello")
    table = SQSSource(queue_url=url, sns_envelope=True, wait_seconds=1, **settings).read_table()
    row = table.to_pylist()[0]
    assert json.loads(row["_record"]) == {"kind": "signup"} and row["_message_id"] == published["MessageId"]
    assert json.loads(row["_attributes"])["topic_arn"] == topic


def test_sqs_missing_queue_is_clear(sqs):
    client, settings = sqs
    with pytest.raises(QueryError, match="does not exist"):
        SQSSource(queue_url=f"{settings['endpoint_url']}/123456789012/nope", **settings).read_table()


# ----------------------------------------------------------------------------- Kafka

def test_kafka_commits_offsets_only_after_bronze_and_never_duplicates(monkeypatch):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from etl_platform.connectors.kafka.reader import KafkaExtraction

    with kafka_broker() as bootstrap:
        topic = f"events_{uuid.uuid4().hex[:6]}"
        admin = AdminClient({"bootstrap.servers": bootstrap})  # kept: its futures die with it
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        producer = Producer({"bootstrap.servers": bootstrap})
        # One record per produce request: tansu's high watermark is the last *batch*'s base offset + 1 (40 records
        # sent as one batch give 1), where Kafka's is the last record's; flushing each record keeps them equal.
        for i in range(40):
            producer.produce(topic, json.dumps({"n": i}).encode(), key=str(i).encode())
            producer.flush(30)
        producer.produce(topic, b"\x80poison")
        producer.flush(30)
        source = KafkaSource(bootstrap_servers=bootstrap, topics=[topic], group_id=f"g_{topic}", wait_seconds=3,
                             join_timeout_seconds=90)
        assert source.pending_messages() == 41  # issue 20, item 12: the sensor's count is the consumer lag
        sensor, resources = source_sensor("events", source_key="events"), {"events": source}
        definitions = dg.Definitions(assets=[source_asset("events", source_key="events")], sensors=[sensor],
                                     resources={**resources, "warehouse": DuckDBWarehouse()})
        with dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources=resources,
                                     definitions=definitions) as context:
            request = list(sensor.evaluate_tick(context).run_requests)[0]
        assert request.tags["messages_waiting"] == "41"
        warehouse = duckdb.connect()
        with monkeypatch.context() as patch:
            _crash_after_commit(patch, KafkaExtraction)
            with pytest.raises(Crash):
                ingest(warehouse, source, "events")
        assert _count(warehouse, "bronze.events") == (40, 40)
        assert warehouse.execute("SELECT _message_id FROM bronze.events ORDER BY _source_position LIMIT 1"
                                 ).fetchone()[0] == f"{topic}:0:0"
        producer.produce(topic, json.dumps({"n": 40}).encode())
        producer.flush(30)
        again = ingest(warehouse, source, "events")  # offsets were not committed: all is read again
        assert again.rows_read == 41 and again.rows_written == 1
        assert _count(warehouse, "bronze.events") == (41, 41)
        assert again.state_after == {"offsets": {f"{topic}:0": 42}}
        assert source.pending_messages() == 0



def test_kafka_a_run_reads_every_record_there_when_it_began_over_a_slow_network(monkeypatch):
    """A run used to end once the consumer had been quiet for wait_seconds, which a partition's first fetch can
    take longer than (CI lost a record this way): now each partition is read up to its high watermark of the run's
    start, then wait_seconds applies. The run reads through a proxy that holds every reply of the (real) broker
    0.25 s, so its first fetches take over half a second (the old read ended after 0.5 s of quiet: it landed none
    of the 6 records). A partition that never delivers its records fails the run within timeout_seconds, naming
    it, and nothing is committed."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    with kafka_broker_behind_proxy() as (bootstrap, network):
        topic = f"slow_{uuid.uuid4().hex[:6]}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
        producer = Producer({"bootstrap.servers": bootstrap})
        for partition in range(3):
            for i in range(2):
                producer.produce(topic, json.dumps({"p": partition, "i": i}).encode(), partition=partition)
        producer.flush(30)
        source = KafkaSource(bootstrap_servers=bootstrap, topics=[topic], group_id=f"g_{topic}", wait_seconds=0)
        warehouse = duckdb.connect()
        network.reply_delay = 0.25
        assert ingest(warehouse, source, "slow").rows_written == 6
        network.reply_delay = 0.0
        assert _count(warehouse, "bronze.slow") == (6, 6)

        producer.produce(topic, json.dumps({"p": 1, "i": 2}).encode(), partition=1)
        producer.flush(30)
        import confluent_kafka

        class PartitionOneNeverDelivers(confluent_kafka.Consumer):  # its fetches never come back, nor its end
            def assign(self, partitions):
                super().assign(partitions)
                self.pause([p for p in partitions if p.partition == 1])

        with monkeypatch.context() as patch:
            patch.setattr(confluent_kafka, "Consumer", PartitionOneNeverDelivers)
            stalled = source.model_copy(update={"timeout_seconds": 2.0})
            with pytest.raises(ClientConnectionError, match=rf"no record arrived within 2 s \(timeout_seconds\) "
                                                            rf"from partition\(s\) holding unread records: "
                                                            rf"{topic}\[1\] \(at offset 2, records up to 2\)"):
                ingest(warehouse, stalled, "slow")
        assert _count(warehouse, "bronze.slow") == (6, 6)
        assert source.pending_messages() == 1  # still there for the next run


# ----------------------------------------------------------------------------- issue 20: each defect, each fixed

def test_sqs_a_visibility_timeout_shorter_than_the_read_takes_each_message_once(sqs):
    """Issue 20, item 1: with a visibility timeout of 0 s SQS hands the same messages out again during the read;
    5 messages landed as 40 rows in the first run. A message seen again within a read is not taken again."""
    client, settings = sqs
    url = client.create_queue(QueueName="short-visibility")["QueueUrl"]
    for i in range(5):
        client.send_message(QueueUrl=url, MessageBody=json.dumps({"n": i}))
    source = SQSSource(queue_url=url, wait_seconds=0, visibility_timeout_seconds=0, max_messages=40, **settings)
    warehouse = duckdb.connect()
    result = ingest(warehouse, source, "short_visibility")
    assert result.rows_read == 5 and result.rows_written == 5
    assert _count(warehouse, "bronze.short_visibility") == (5, 5)
    assert int(client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"]) == 0


def test_rabbitmq_a_message_id_delivered_twice_in_the_first_read_lands_once(rabbit_queue):
    """Issue 20, item 2: the first landing of a source took another path (CREATE TABLE AS) and kept both."""
    name, publish, channel = rabbit_queue
    for body in (b'{"v": 1}', b'{"v": 1}', b'{"v": 2}'):
        channel.basic_publish("", name, body, pika.BasicProperties(message_id="same-id" if b"1" in body else "other"))
    warehouse = duckdb.connect()
    result = ingest(warehouse, RabbitMQSource(queue=name, password="guest", wait_seconds=0.5), "dupes")
    assert result.rows_read == 3 and result.rows_written == 2
    assert _count(warehouse, "bronze.dupes") == (2, 2)


def test_rabbitmq_a_poison_message_redelivered_after_a_crash_is_quarantined_once(rabbit_queue, monkeypatch):
    """Issue 20, item 2: a kill between the commit and the acknowledgement quarantined poison messages twice."""
    from etl_platform.connectors.rabbitmq.reader import RabbitMQExtraction

    name, publish, channel = rabbit_queue
    publish([b'{"ok": 1}', b"{not json", b"\xff not utf-8"])
    source = RabbitMQSource(queue=name, password="guest", wait_seconds=0.5)
    warehouse = duckdb.connect()
    with monkeypatch.context() as patch:
        _crash_after_commit(patch, RabbitMQExtraction)
        with pytest.raises(Crash):
            ingest(warehouse, source, "poison")
    again = ingest(warehouse, source, "poison")
    assert again.rows_read == 1 and again.rows_written == 0
    assert warehouse.execute("SELECT count(*) FROM bronze._source_quarantine WHERE source = 'poison'"
                             ).fetchone()[0] == 2
    assert channel.queue_declare(name, passive=True).method.message_count == 0


def test_rabbitmq_a_message_with_a_lone_surrogate_is_quarantined(rabbit_queue):
    """Issue 20, item 17: '{"t": "\\ud800"}' is JSON, but not Unicode text: it landed, and then every
    `_record->>...` query on the table failed."""
    name, publish, channel = rabbit_queue
    publish([b'{"t": "fine"}', b'{"t": "\\ud800 alone"}', b'{"t": "pair \\ud83d\\ude00"}'])
    warehouse = duckdb.connect()
    result = ingest(warehouse, RabbitMQSource(queue=name, password="guest", wait_seconds=0.5), "surrogates")
    assert (result.rows_written, result.rows_quarantined) == (2, 1)
    assert sorted(r[0] for r in warehouse.execute("SELECT _record->>'$.t' FROM bronze.surrogates").fetchall()) == \
        ["fine", "pair \U0001F600"]
    assert "lone UTF-16 surrogate" in warehouse.execute("SELECT reason FROM bronze._source_quarantine").fetchone()[0]
