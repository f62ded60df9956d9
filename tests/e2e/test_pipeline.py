"""The local pipeline end to end: S3 -> notifications -> SQS -> event pump -> handlers -> index."""

from __future__ import annotations

import json
import time

from cachesync.index_models import IndexQuery
from cachesync.local import LocalStack
from cachesync.local.event_pump import EventPump
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from tests.support.s3_events import change_document

AWKWARD_KEYS = [
    "customers/acme/changes/CHG 2001 (draft).json",
    "changes/a+b=c.json",
    "changes/100% done.json",
    "changes/café/résumé ünïcode.json",
    "customers/globex/changes/2026/11/22/CHG-3001.json",
]
PART = 5 * 1024 * 1024


def index_matches_bucket(stack: LocalStack, store: DynamoDBIndexStore) -> dict[str, str]:
    """Every object is indexed with its current ETag; returns key -> ETag of the bucket."""
    s3 = stack.client("s3")
    bucket = stack.resources.bucket_name
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    current = {entry["Key"]: entry["ETag"].strip('"') for entry in listed}
    for key, etag in current.items():
        indexed = store.get_document(bucket, key)
        assert indexed is not None, f"{key} is in S3 but not in the index"
        assert indexed.etag == etag, key
    return current


def test_writes_overwrites_deletes_and_multipart_reach_the_index(
    e2e_stack: LocalStack, pump: EventPump
) -> None:
    s3 = e2e_stack.client("s3")
    bucket = e2e_stack.resources.bucket_name
    store = DynamoDBIndexStore(e2e_stack.client("dynamodb"), e2e_stack.resources.table_name)
    # Given documents written under awkward keys, some overwritten and some deleted
    for number, key in enumerate(AWKWARD_KEYS):
        s3.put_object(Bucket=bucket, Key=key, Body=change_document(f"E{number}", customers=["e2e"]))
    s3.put_object(
        Bucket=bucket, Key=AWKWARD_KEYS[1], Body=change_document("E1", title="overwritten")
    )
    s3.delete_object(Bucket=bucket, Key=AWKWARD_KEYS[2])
    # And a document of about 5.5 MB uploaded in two parts (over the item limit: metadata only)
    big_key = "changes/multipart.json"
    body = change_document("BIG", customers=["e2e"], payload="x" * (PART + 500_000))
    upload = s3.create_multipart_upload(Bucket=bucket, Key=big_key)
    parts = []
    for number, chunk in enumerate((body[:PART], body[PART:]), start=1):
        part = s3.upload_part(
            Bucket=bucket, Key=big_key, PartNumber=number, UploadId=upload["UploadId"], Body=chunk
        )
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key=big_key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    # When the pump has drained the queues
    stats = pump.drain()
    # Then the index holds exactly the bucket's objects, at their current versions
    current = index_matches_bucket(e2e_stack, store)
    assert AWKWARD_KEYS[2] not in current
    assert store.get_document(bucket, AWKWARD_KEYS[2]) is None
    overwritten = store.get_document(bucket, AWKWARD_KEYS[1])
    assert overwritten is not None
    assert overwritten.title == "overwritten"
    big = store.get_document(bucket, big_key)
    assert big is not None
    assert big.body_in_s3
    # And the customer index lists the live documents naming the customer (not the one whose
    # overwrite dropped it)
    customer_keys = {item.key for item in store.query(IndexQuery(customer="e2e")).items}
    assert customer_keys == {AWKWARD_KEYS[0], AWKWARD_KEYS[3], AWKWARD_KEYS[4], big_key}
    assert stats.invocation_errors == 0


def test_a_poison_message_reaches_the_dead_letter_queue(
    e2e_stack: LocalStack, pump: EventPump
) -> None:
    s3 = e2e_stack.client("s3")
    sqs = e2e_stack.client("sqs")
    bucket = e2e_stack.resources.bucket_name
    dlq = e2e_stack.provisioned.created_dlq.url
    # Given a document that is not valid JSON, and a good one beside it
    s3.put_object(Bucket=bucket, Key="changes/poison.json", Body=b"{ not json")
    s3.put_object(Bucket=bucket, Key="changes/fine.json", Body=change_document("FINE"))
    # When the pump keeps polling past the visibility timeout
    deadline = time.monotonic() + 30
    dead: list[dict[str, object]] = []
    while time.monotonic() < deadline and not dead:
        pump.poll_once(wait_seconds=0)
        dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])  # type: ignore[assignment]
        time.sleep(0.2)
    # Then the poison message is in the DLQ after maxReceiveCount receives, alone
    assert len(dead) == 1
    notification = json.loads(str(dead[0]["Body"]))
    assert notification["Records"][0]["s3"]["object"]["key"].endswith("poison.json")
    store = DynamoDBIndexStore(e2e_stack.client("dynamodb"), e2e_stack.resources.table_name)
    assert store.get_document(bucket, "changes/fine.json") is not None
