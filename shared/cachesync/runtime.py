"""Composition root: settings in, wired use cases out. Entry points call these once, at start."""

from __future__ import annotations

from cachesync import aws_clients
from cachesync.settings import SyncSettings
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import S3ObjectStore
from cachesync.sync import S3EventSync


def build_event_sync(settings: SyncSettings) -> S3EventSync:
    """The S3 event sync use case on clients built with the SDK's defaults."""
    index = DynamoDBIndexStore(
        aws_clients.client("dynamodb"),
        settings.table_name,
        tombstone_ttl=settings.tombstone_ttl,
    )
    objects = S3ObjectStore(aws_clients.client("s3"))
    return S3EventSync(index, objects, buckets={settings.bucket_name}, retention=settings.retention)
