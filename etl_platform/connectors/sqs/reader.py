"""Amazon SQS (and SNS topics delivered to an SQS queue): messages deleted only after bronze has committed.

A received message stays invisible for ``visibility_timeout_seconds``; set it longer than a run takes, or
SQS hands the message out again while the run is going. Such a message is still taken once: within a read a
message seen again only renews its receipt handle (the newest is the one SQS deletes by), and a receive that
brings back nothing but messages already taken ends the read (the queue is cycling through them). Across
reads ``_message_id`` (SQS's MessageId, or with ``sns_envelope`` the SNS MessageId) keeps one row per id.
With ``sns_envelope: true`` the SNS notification is unwrapped: ``_record`` is the published message, and the
topic, subject and SNS attributes go to ``_attributes``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone

from pydantic import Field

from etl_platform.errors import ClientConnectionError, CredentialsRefusedError, QueryError
from etl_platform.extras import require
from etl_platform.sources.base import Extraction, SourceBatch, first_line, without_secrets
from etl_platform.sources.queues import Message, QueueSource

RECEIVE_MAX = 10  # SQS hands out at most 10 messages per call


class SQSSource(QueueSource):
    """An SQS queue, by URL."""

    kind = "sqs"

    queue_url: str
    region: str = "us-east-1"
    endpoint_url: str | None = Field(default=None, description="For moto, LocalStack, ElasticMQ.")
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = Field(default=None, repr=False)  # a secret
    aws_session_token: str | None = Field(default=None, repr=False)  # a secret
    visibility_timeout_seconds: int = Field(default=900, ge=0, le=43_200)
    sns_envelope: bool = Field(default=False, description="Messages are SNS notifications: unwrap them.")

    def describe(self) -> str:
        return f"sqs {self.queue_url}"

    def client(self):
        boto3 = require("boto3", "SQSSource")
        require("botocore", "SQSSource")
        from botocore.config import Config

        return boto3.client(
            "sqs", region_name=self.region, endpoint_url=self.endpoint_url,
            aws_access_key_id=self.aws_access_key_id, aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            config=Config(connect_timeout=self.timeout_seconds, read_timeout=max(self.timeout_seconds, 25),
                          retries={"max_attempts": 3, "mode": "standard"}),
        )

    def fail(self, action: str, error: Exception) -> Exception:
        require("botocore", "SQSSource")
        from botocore.exceptions import ClientError

        text = without_secrets(first_line(error), self.aws_secret_access_key, self.aws_session_token)
        if isinstance(error, ClientError):
            code = error.response.get("Error", {}).get("Code", "")
            if "NonExistent" in code or "NotFound" in code:
                return QueryError(f"sqs: queue {self.queue_url} does not exist ({code})")
            if code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied", "UnrecognizedClientException"):
                return CredentialsRefusedError(f"sqs: {self.queue_url} refused the credentials ({code}): {text}")
            return QueryError(f"sqs: {action} on {self.queue_url} failed: {text}")
        return ClientConnectionError(f"sqs: {action} on {self.queue_url} failed: {text}")

    def check_connection(self) -> None:
        self.pending_messages()

    def pending_messages(self) -> int:
        try:
            attributes = self.client().get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        except Exception as error:
            raise self.fail("GetQueueAttributes", error) from error
        return int(attributes.get("ApproximateNumberOfMessages", 0))

    def extract(self, state: dict | None = None) -> Extraction:
        return SQSExtraction(self, state)

    def message(self, raw: dict) -> Message:
        attributes = {"attributes": raw.get("Attributes", {}),
                      "message_attributes": raw.get("MessageAttributes", {}), "sqs_message_id": raw["MessageId"]}
        sent = raw.get("Attributes", {}).get("SentTimestamp")
        published = datetime.fromtimestamp(int(sent) / 1000, timezone.utc) if sent else None
        body, message_id = raw["Body"].encode("utf-8"), raw["MessageId"]
        if self.sns_envelope:
            try:
                envelope = json.loads(raw["Body"])
                body = envelope["Message"].encode("utf-8")
                message_id = envelope["MessageId"]
                attributes.update(topic_arn=envelope.get("TopicArn"), subject=envelope.get("Subject"),
                                  sns_attributes=envelope.get("MessageAttributes", {}))
                if envelope.get("Timestamp"):
                    published = datetime.fromisoformat(envelope["Timestamp"].replace("Z", "+00:00"))
            except (ValueError, KeyError, TypeError, AttributeError):
                pass  # not an SNS envelope: kept as it is; `payload` decides whether it is poison
        return Message(message_id, body, f"{self.queue_url.rsplit('/', 1)[-1]}:{raw['MessageId']}", published,
                       attributes)


class SQSExtraction(Extraction):
    def __init__(self, source: SQSSource, state: dict | None):
        super().__init__(state)
        self.source = source
        self.client = None
        self.receipts: dict[str, str] = {}  # SQS MessageId -> its newest receipt handle

    def _batches(self) -> Iterator[SourceBatch]:
        source = self.source
        self.client = source.client()
        messages, taken = [], 0
        while taken < source.max_messages:
            try:
                answer = self.client.receive_message(
                    QueueUrl=source.queue_url, MaxNumberOfMessages=min(RECEIVE_MAX, source.max_messages - taken),
                    WaitTimeSeconds=int(min(source.wait_seconds, 20)), VisibilityTimeout=source.visibility_timeout_seconds,
                    AttributeNames=["All"], MessageAttributeNames=["All"])
            except Exception as error:
                raise source.fail("ReceiveMessage", error) from error
            received = answer.get("Messages", [])
            fresh = [raw for raw in received if raw["MessageId"] not in self.receipts]
            for raw in received:
                self.receipts[raw["MessageId"]] = raw["ReceiptHandle"]
            if not fresh:  # nothing left, or only messages this read took already (visible again: timeout passed)
                break
            messages += [source.message(raw) for raw in fresh]
            taken += len(fresh)
            if len(messages) >= source.batch_size:
                yield source.to_batch(messages)
                messages = []
        yield source.to_batch(messages)
        self.state = {"messages_taken": taken}

    def acknowledge(self) -> None:
        failed = []
        handles = list(self.receipts.values())
        for start in range(0, len(handles), RECEIVE_MAX):
            entries = [{"Id": str(i), "ReceiptHandle": handle}
                       for i, handle in enumerate(handles[start:start + RECEIVE_MAX])]
            try:
                answer = self.client.delete_message_batch(QueueUrl=self.source.queue_url, Entries=entries)
            except Exception as error:
                raise self.source.fail("DeleteMessageBatch", error) from error
            failed += answer.get("Failed", [])
        self.receipts = {}
        if failed:
            # The rows are committed; these messages come back after the visibility timeout and are recognised then.
            raise QueryError(f"sqs: {len(failed)} message(s) committed to bronze could not be deleted from "
                             f"{self.source.queue_url} ({failed[0].get('Code')}: {failed[0].get('Message')}); they "
                             "will be delivered again and skipped as already ingested")
