"""Stores: all AWS I/O of cachesync, each behind a small class taking an injected boto3 client."""

from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import ListedObject, S3ObjectStore, StoredObject

__all__ = ["DynamoDBIndexStore", "ListedObject", "S3ObjectStore", "StoredObject"]
