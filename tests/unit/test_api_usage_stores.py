"""The usage stores' answers to DynamoDB's, without a server (a scripted client)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from cachesync.retry_policies import RetryPolicy
from cachesync.stores.dynamodb_api_usage import DynamoDBApiUsageStore


class LostAnswerClient:
    """PutItem stores the item, then the answer is lost (a 500) once; the retry meets it."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.calls = 0

    def put_item(self, **request: Any) -> dict[str, Any]:
        self.calls += 1
        key = request["Item"]["counter_id"]["S"]
        if key in self.items:
            raise ClientError(
                {
                    "Error": {"Code": "ConditionalCheckFailedException", "Message": "exists"},
                    "Item": self.items[key],
                },
                "PutItem",
            )
        self.items[key] = request["Item"]
        if self.calls == 1:
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "lost"}}, "PutItem"
            )
        return {}


def test_a_retried_put_of_a_nonce_is_not_taken_for_a_replay() -> None:
    # Given a client whose first PutItem is applied but answered with a 500
    client = LostAnswerClient()
    store = DynamoDBApiUsageStore(
        client, "usage", retry_policy=RetryPolicy(attempts=2, initial_wait_seconds=0.001)
    )  # type: ignore[arg-type]
    # When a nonce is remembered (the store retries) / Then it is the call's own claim: no replay
    assert store.remember("k1", "nonce-0123456789ab", 2_000_000_000) is True
    assert client.calls == 2
    # and a real replay (another call) is refused
    assert store.remember("k1", "nonce-0123456789ab", 2_000_000_000) is False
