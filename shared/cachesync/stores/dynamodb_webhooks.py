"""Webhook subscriptions and delivery attempts in DynamoDB, through an injected client.

Layouts: ``webhooks_schema.py``. DynamoDB error codes become cachesync errors in exactly one
function, :func:`_translate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from cachesync.change_events import EventType
from cachesync.exceptions import (
    CacheSyncError,
    SubscriptionChangedError,
    SubscriptionNotFoundError,
    WebhookStoreRequestError,
    WebhookStoreUnavailableError,
)
from cachesync.ordering import format_time, parse_time
from cachesync.retry_policies import DEFAULT_RETRY_POLICY, RetryPolicy, error_code
from cachesync.retry_policies import is_transient_aws_error as _is_transient
from cachesync.stores.index_items import deserialize, serialize
from cachesync.webhooks.models import (
    DeliveryAttempt,
    SigningSecrets,
    Subscription,
    SubscriptionFilters,
    SubscriptionStatus,
)
from cachesync.webhooks_schema import (
    ATTEMPT_RETENTION_DAYS_DEFAULT,
    AttemptAttr,
    SubscriptionAttr,
    attempt_key,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

T = TypeVar("T")


class SubscriptionChanges(BaseModel):
    """A PATCH of a subscription: the fields given are replaced, the others kept."""

    model_config = ConfigDict(frozen=True)

    url: str | None = None
    event_types: tuple[EventType, ...] | None = None
    filters: SubscriptionFilters | None = None
    status: SubscriptionStatus | None = None


class _ConditionFailedError(CacheSyncError):
    """Internal: a write's condition failed; the caller says what that means."""


class DynamoDBWebhookStore:
    """Subscriptions (one table) and their recent delivery attempts (another, with a TTL)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        deliveries_table_name: str,
        *,
        attempt_retention: timedelta = timedelta(days=ATTEMPT_RETENTION_DAYS_DEFAULT),
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    ) -> None:
        """``attempt_retention``: how long an attempt's record is kept (its TTL)."""
        self._client = client
        self._table = table_name
        self._deliveries = deliveries_table_name
        self._retention = attempt_retention
        self._retry = retry_policy

    # ------------------------------------------------------------------ subscriptions

    def create(self, subscription: Subscription) -> None:
        """Store a new subscription; :class:`SubscriptionChangedError` if its id is taken."""
        try:
            self._call(
                "PutItem",
                lambda: self._client.put_item(
                    TableName=self._table,
                    Item=serialize(_item(subscription)),
                    # A new id: never overwrite another subscription (and its secret).
                    ConditionExpression="attribute_not_exists(#id)",
                    ExpressionAttributeNames={"#id": SubscriptionAttr.ID},
                ),
            )
        except _ConditionFailedError as error:
            raise SubscriptionChangedError(subscription.id) from error

    def get(self, subscription_id: str) -> Subscription | None:
        """The subscription ``subscription_id`` (a strongly consistent read), or ``None``."""
        response = self._call(
            "GetItem",
            lambda: self._client.get_item(
                TableName=self._table,
                Key=serialize({SubscriptionAttr.ID: subscription_id}),
                ConsistentRead=True,
            ),
        )
        raw = response.get("Item")
        return _subscription(deserialize(raw)) if raw else None

    def list_subscriptions(self, owner_key_id: str | None = None) -> list[Subscription]:
        """Every subscription, or those created by ``owner_key_id``."""
        return list(self._scan(owner_key_id))

    def _scan(self, owner_key_id: str | None) -> Iterator[Subscription]:
        arguments: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True}
        if owner_key_id is not None:
            arguments |= {
                "FilterExpression": "#owner = :owner",
                "ExpressionAttributeNames": {"#owner": SubscriptionAttr.OWNER_KEY_ID},
                "ExpressionAttributeValues": serialize({":owner": owner_key_id}),
            }
        while True:
            page = self._call("Scan", lambda: self._client.scan(**arguments))
            for raw in page.get("Items", []):
                yield _subscription(deserialize(raw))
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            arguments["ExclusiveStartKey"] = last

    def update(self, subscription_id: str, changes: SubscriptionChanges) -> Subscription:
        """Apply ``changes`` (PATCH); the subscription as it is now.

        Re-enabling (status ``active``) also resets the failure count.
        """
        values: dict[str, Any] = {}
        if changes.url is not None:
            values[SubscriptionAttr.URL] = changes.url
        if changes.event_types is not None:
            values[SubscriptionAttr.EVENT_TYPES] = [t.value for t in changes.event_types]
        if changes.filters is not None:
            values[SubscriptionAttr.FILTER_CUSTOMERS] = list(changes.filters.customers)
            values[SubscriptionAttr.FILTER_KINDS] = list(changes.filters.kinds)
            values[SubscriptionAttr.FILTER_STATUSES] = list(changes.filters.statuses)
        if changes.status is not None:
            values[SubscriptionAttr.STATUS] = changes.status.value
            if changes.status is SubscriptionStatus.ACTIVE:
                values[SubscriptionAttr.CONSECUTIVE_FAILURES] = 0
        if not values:
            found = self.get(subscription_id)
            if found is None:
                raise SubscriptionNotFoundError(subscription_id)
            return found
        names = {f"#f{i}": name for i, name in enumerate(values)}
        placeholders = {f":v{i}": value for i, value in enumerate(values.values())}
        assignments = ", ".join(f"#f{i} = :v{i}" for i in range(len(values)))
        try:
            response = self._call(
                "UpdateItem",
                lambda: self._client.update_item(
                    TableName=self._table,
                    Key=serialize({SubscriptionAttr.ID: subscription_id}),
                    UpdateExpression=f"SET {assignments}",
                    # It exists: an update never creates a half subscription.
                    ConditionExpression="attribute_exists(#id)",
                    ExpressionAttributeNames={**names, "#id": SubscriptionAttr.ID},
                    ExpressionAttributeValues=serialize(placeholders),
                    ReturnValues="ALL_NEW",
                ),
            )
        except _ConditionFailedError as error:
            raise SubscriptionNotFoundError(subscription_id) from error
        return _subscription(deserialize(response["Attributes"]))

    def disable_owned_by(self, owner_key_id: str) -> list[str]:
        """Disable every subscription ``owner_key_id`` made (its key was revoked); their ids."""
        disabled: list[str] = []
        for subscription in self.list_subscriptions(owner_key_id):
            if subscription.status is not SubscriptionStatus.DISABLED:
                self.update(
                    subscription.id, SubscriptionChanges(status=SubscriptionStatus.DISABLED)
                )
                disabled.append(subscription.id)
        return disabled

    def delete(self, subscription_id: str) -> None:
        """Delete a subscription; its queued messages are dropped when they come up."""
        try:
            self._call(
                "DeleteItem",
                lambda: self._client.delete_item(
                    TableName=self._table,
                    Key=serialize({SubscriptionAttr.ID: subscription_id}),
                    # It exists: deleting an unknown id is reported, not silently accepted.
                    ConditionExpression="attribute_exists(#id)",
                    ExpressionAttributeNames={"#id": SubscriptionAttr.ID},
                ),
            )
        except _ConditionFailedError as error:
            raise SubscriptionNotFoundError(subscription_id) from error

    def rotate_secret(
        self, before: Subscription, new_secret: str, previous_valid_until: datetime
    ) -> Subscription:
        """Make ``new_secret`` current; the old one keeps signing until
        ``previous_valid_until``. :class:`SubscriptionChangedError` if another rotation won."""
        try:
            response = self._call(
                "UpdateItem",
                lambda: self._client.update_item(
                    TableName=self._table,
                    Key=serialize({SubscriptionAttr.ID: before.id}),
                    UpdateExpression="SET #secret = :new, #previous = :old, #until = :until",
                    ConditionExpression=(
                        # It still exists: a rotation never resurrects a deleted subscription.
                        "attribute_exists(#id)"
                        # Its secret is still the one rotated from: two rotations at once
                        # cannot both win, nor one drop the other's secret unseen.
                        " AND #secret = :old"
                    ),
                    ExpressionAttributeNames={
                        "#id": SubscriptionAttr.ID,
                        "#secret": SubscriptionAttr.SECRET,
                        "#previous": SubscriptionAttr.PREVIOUS_SECRET,
                        "#until": SubscriptionAttr.PREVIOUS_VALID_UNTIL,
                    },
                    ExpressionAttributeValues=serialize(
                        {
                            ":new": new_secret,
                            ":old": before.secrets.current,
                            ":until": format_time(previous_valid_until),
                        }
                    ),
                    ReturnValues="ALL_NEW",
                ),
            )
        except _ConditionFailedError as error:
            raise SubscriptionChangedError(before.id) from error
        return _subscription(deserialize(response["Attributes"]))

    def record_success(self, subscription_id: str) -> None:
        """A delivery succeeded: the failure count starts again, a failing one is active."""
        try:
            self._call(
                "UpdateItem",
                lambda: self._client.update_item(
                    TableName=self._table,
                    Key=serialize({SubscriptionAttr.ID: subscription_id}),
                    UpdateExpression="SET #failures = :zero, #status = :active",
                    ConditionExpression=(
                        # It still exists: a late success never recreates a deleted one.
                        "attribute_exists(#id)"
                        # An operator's "disabled" stands: a success does not re-enable it.
                        " AND #status <> :disabled"
                    ),
                    ExpressionAttributeNames={
                        "#id": SubscriptionAttr.ID,
                        "#failures": SubscriptionAttr.CONSECUTIVE_FAILURES,
                        "#status": SubscriptionAttr.STATUS,
                    },
                    ExpressionAttributeValues=serialize(
                        {
                            ":zero": 0,
                            ":active": SubscriptionStatus.ACTIVE.value,
                            ":disabled": SubscriptionStatus.DISABLED.value,
                        }
                    ),
                ),
            )
        except _ConditionFailedError:
            return  # deleted or disabled meanwhile: nothing to record

    def record_failure(self, subscription_id: str, threshold: int) -> SubscriptionStatus | None:
        """A delivery failed: count it; at ``threshold`` consecutive failures an active
        subscription becomes failing. Its status now (``None``: it no longer exists)."""
        try:
            response = self._call(
                "UpdateItem",
                lambda: self._client.update_item(
                    TableName=self._table,
                    Key=serialize({SubscriptionAttr.ID: subscription_id}),
                    UpdateExpression="ADD #failures :one",
                    # It still exists: ADD on a missing item would create a stub.
                    ConditionExpression="attribute_exists(#id)",
                    ExpressionAttributeNames={
                        "#id": SubscriptionAttr.ID,
                        "#failures": SubscriptionAttr.CONSECUTIVE_FAILURES,
                    },
                    ExpressionAttributeValues=serialize({":one": 1}),
                    ReturnValues="ALL_NEW",
                ),
            )
        except _ConditionFailedError:
            return None
        counted = _subscription(deserialize(response["Attributes"]))
        if (
            counted.status is not SubscriptionStatus.ACTIVE
            or counted.consecutive_failures < threshold
        ):
            return counted.status
        try:
            self._call(
                "UpdateItem",
                lambda: self._client.update_item(
                    TableName=self._table,
                    Key=serialize({SubscriptionAttr.ID: subscription_id}),
                    UpdateExpression="SET #status = :failing",
                    ConditionExpression=(
                        # Still active: never overrides "disabled" set meanwhile.
                        "#status = :active"
                        # Still at or over the threshold: a success since then reset the
                        # count, and a subscription that works again is not marked failing.
                        " AND #failures >= :threshold"
                    ),
                    ExpressionAttributeNames={
                        "#status": SubscriptionAttr.STATUS,
                        "#failures": SubscriptionAttr.CONSECUTIVE_FAILURES,
                    },
                    ExpressionAttributeValues=serialize(
                        {
                            ":failing": SubscriptionStatus.FAILING.value,
                            ":active": SubscriptionStatus.ACTIVE.value,
                            ":threshold": threshold,
                        }
                    ),
                ),
            )
        except _ConditionFailedError:
            return counted.status
        return SubscriptionStatus.FAILING

    # ------------------------------------------------------------------ attempts

    def record_attempt(self, attempt: DeliveryAttempt) -> None:
        """Keep ``attempt`` for the retention period (then DynamoDB's TTL removes it)."""
        at = format_time(attempt.at)
        expires = int((attempt.at + self._retention).timestamp())
        item = {
            AttemptAttr.SUBSCRIPTION_ID: attempt.subscription_id,
            AttemptAttr.KEY: attempt_key(at, attempt.webhook_id, attempt.attempt),
            AttemptAttr.WEBHOOK_ID: attempt.webhook_id,
            AttemptAttr.ATTEMPT: attempt.attempt,
            AttemptAttr.STATUS_CODE: attempt.status_code,
            AttemptAttr.ERROR: attempt.error,
            AttemptAttr.LATENCY_MS: attempt.latency_ms,
            AttemptAttr.AT: at,
            AttemptAttr.EXPIRES_AT: expires,
        }
        # No condition: the key is unique per attempt, and a retried put writes the same item.
        self._call(
            "PutItem",
            lambda: self._client.put_item(TableName=self._deliveries, Item=serialize(item)),
        )

    def recent_attempts(
        self, subscription_id: str, now: datetime, limit: int = 20
    ) -> list[DeliveryAttempt]:
        """The latest attempts of a subscription, newest first (expired ones left out)."""
        response = self._call(
            "Query",
            lambda: self._client.query(
                TableName=self._deliveries,
                KeyConditionExpression="#sub = :sub",
                # TTL removal is eventual (days): an expired record is filtered out here.
                FilterExpression="#expires > :now",
                ExpressionAttributeNames={
                    "#sub": AttemptAttr.SUBSCRIPTION_ID,
                    "#expires": AttemptAttr.EXPIRES_AT,
                },
                ExpressionAttributeValues=serialize(
                    {":sub": subscription_id, ":now": int(now.timestamp())}
                ),
                ScanIndexForward=False,
                Limit=limit,
            ),
        )
        return [_attempt(deserialize(raw)) for raw in response.get("Items", [])]

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            return self._retry.call(operation, fn)
        except ClientError as error:
            raise _translate(operation, error, self._table) from error
        except BotoCoreError as error:
            raise WebhookStoreUnavailableError(
                operation, type(error).__name__, f"webhook tables: {error}"
            ) from error


def _item(subscription: Subscription) -> dict[str, Any]:
    secrets = subscription.secrets
    return {
        SubscriptionAttr.ID: subscription.id,
        SubscriptionAttr.URL: subscription.url,
        SubscriptionAttr.EVENT_TYPES: [t.value for t in subscription.event_types],
        SubscriptionAttr.FILTER_CUSTOMERS: list(subscription.filters.customers),
        SubscriptionAttr.FILTER_KINDS: list(subscription.filters.kinds),
        SubscriptionAttr.FILTER_STATUSES: list(subscription.filters.statuses),
        SubscriptionAttr.OWNER_KEY_ID: subscription.owner_key_id,
        SubscriptionAttr.OWNER_CUSTOMERS: (
            list(subscription.owner_customers) if subscription.owner_customers is not None else None
        ),
        SubscriptionAttr.STATUS: subscription.status.value,
        SubscriptionAttr.CONSECUTIVE_FAILURES: subscription.consecutive_failures,
        SubscriptionAttr.CREATED_AT: format_time(subscription.created_at),
        SubscriptionAttr.SECRET: secrets.current,
        SubscriptionAttr.PREVIOUS_SECRET: secrets.previous,
        SubscriptionAttr.PREVIOUS_VALID_UNTIL: (
            format_time(secrets.previous_valid_until) if secrets.previous_valid_until else None
        ),
    }


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(part) for part in value or ())


def _subscription(item: dict[str, Any]) -> Subscription:
    owner_customers = item.get(SubscriptionAttr.OWNER_CUSTOMERS)
    until = item.get(SubscriptionAttr.PREVIOUS_VALID_UNTIL)
    return Subscription(
        id=str(item[SubscriptionAttr.ID]),
        url=str(item[SubscriptionAttr.URL]),
        event_types=tuple(EventType(str(t)) for t in item[SubscriptionAttr.EVENT_TYPES]),
        filters=SubscriptionFilters(
            customers=_strings(item.get(SubscriptionAttr.FILTER_CUSTOMERS)),
            kinds=_strings(item.get(SubscriptionAttr.FILTER_KINDS)),
            statuses=_strings(item.get(SubscriptionAttr.FILTER_STATUSES)),
        ),
        owner_key_id=str(item[SubscriptionAttr.OWNER_KEY_ID]),
        owner_customers=_strings(owner_customers) if owner_customers is not None else None,
        status=SubscriptionStatus(str(item[SubscriptionAttr.STATUS])),
        consecutive_failures=int(item.get(SubscriptionAttr.CONSECUTIVE_FAILURES, 0)),
        created_at=parse_time(str(item[SubscriptionAttr.CREATED_AT])),
        secrets=SigningSecrets(
            current=str(item[SubscriptionAttr.SECRET]),
            previous=item.get(SubscriptionAttr.PREVIOUS_SECRET),
            previous_valid_until=parse_time(str(until)) if until else None,
        ),
    )


def _attempt(item: dict[str, Any]) -> DeliveryAttempt:
    code = item.get(AttemptAttr.STATUS_CODE)
    return DeliveryAttempt(
        subscription_id=str(item[AttemptAttr.SUBSCRIPTION_ID]),
        webhook_id=str(item[AttemptAttr.WEBHOOK_ID]),
        attempt=int(item[AttemptAttr.ATTEMPT]),
        status_code=int(code) if code is not None else None,
        error=item.get(AttemptAttr.ERROR),
        latency_ms=int(item[AttemptAttr.LATENCY_MS]),
        at=parse_time(str(item[AttemptAttr.AT])),
    )


def _translate(operation: str, error: ClientError, table: str) -> CacheSyncError:
    """The one place DynamoDB error codes of the webhook tables become cachesync errors."""
    code = error_code(error)
    message = f"webhook tables ({table}): {error.response.get('Error', {}).get('Message', error)}"
    if code == "ConditionalCheckFailedException":
        return _ConditionFailedError(message)
    if _is_transient(error):
        return WebhookStoreUnavailableError(operation, code, message)
    return WebhookStoreRequestError(operation, code, message)
