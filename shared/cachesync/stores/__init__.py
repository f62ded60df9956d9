"""Stores: all AWS I/O of cachesync, each behind a small class taking an injected boto3 client.

Use cases depend on the :class:`IndexStore` and :class:`ObjectStore` Protocols; the classes here
implement them.
"""

from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.interfaces import IndexStore, ObjectStore
from cachesync.stores.s3_objects import ListedObject, S3ObjectStore, StoredObject

__all__ = [
    "DynamoDBIndexStore",
    "IndexStore",
    "ListedObject",
    "ObjectStore",
    "S3ObjectStore",
    "StoredObject",
]
