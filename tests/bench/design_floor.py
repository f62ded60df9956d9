"""What the index design requires a writer to store for one document, in raw boto3 terms.

The benchmarks' *design* floors write these items with no cachesync code, so that a ratio against
them separates the cost of our code from the cost of the design itself.

The design (``cachesync.index_schema`` and ``DynamoDBIndexStore._document_items``):

* the document item (``sk = "doc"``) carries the keys of ``TimeRangeIndex``
  (``tr_pk = "<yyyy-mm>"``), ``StatusTimeIndex`` (``st_pk = "<status>#<yyyy-mm>"``) and
  ``CustomerTimeIndex`` of its *primary* customer, the smallest code
  (``ct_pk = "<customer>#<yyyy>"``); every sort key is the index time;
* one link item (``sk = "customer#<code>"``, with its own ``CustomerTimeIndex`` keys) exists for
  each *other* customer.

So a single-customer document is one conditional ``PutItem``; a multi-customer one is one
``TransactWriteItems`` of the document item and its links. The index time of the bench documents
(change records that all carry ``modified_at``) is their ``modified_at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def primary_customer(customers: Sequence[str]) -> str | None:
    """The customer whose ``CustomerTimeIndex`` entry is the document item: the smallest code."""
    return min(customers, default=None)


def link_count(customers: Sequence[str]) -> int:
    """Link items the design stores for a document naming ``customers``: all but the primary."""
    return max(len(set(customers)) - 1, 0)


def design_items(
    pk: str, document: dict[str, Any], attributes: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The document item (``attributes`` plus keys, summary fields and GSI keys) and its links.

    ``attributes`` are extra low-level attributes of the document item (``{"S": ...}`` form):
    the body, the ETag, a sequencer.
    """
    modified = str(document["modified_at"])
    customers = [str(customer) for customer in document["customers"]]
    summary = {
        "doc_id": {"S": str(document["change_id"])},
        "status": {"S": str(document["status"])},
        "customers": {"L": [{"S": customer} for customer in customers]},
    }
    item: dict[str, Any] = {
        "pk": {"S": pk},
        "sk": {"S": "doc"},
        **attributes,
        **summary,
        "tr_pk": {"S": modified[:7]},
        "tr_sk": {"S": modified},
        "st_pk": {"S": f"{document['status']}#{modified[:7]}"},
        "st_sk": {"S": modified},
    }
    primary = primary_customer(customers)
    if primary is not None:
        item |= {"ct_pk": {"S": f"{primary}#{modified[:4]}"}, "ct_sk": {"S": modified}}
    links = [
        {
            "pk": {"S": pk},
            "sk": {"S": f"customer#{customer}"},
            "customer": {"S": customer},
            **summary,
            **({"etag": attributes["etag"]} if "etag" in attributes else {}),
            "ct_pk": {"S": f"{customer}#{modified[:4]}"},
            "ct_sk": {"S": modified},
        }
        for customer in dict.fromkeys(customers)
        if customer != primary
    ]
    return item, links


def design_write(
    dynamodb: DynamoDBClient,
    table: str,
    item: dict[str, Any],
    links: list[dict[str, Any]],
    condition: str,
    values: dict[str, Any] | None = None,
) -> str:
    """Write ``item`` under ``condition``, and its ``links`` with it; return the operation used.

    No links: one conditional ``PutItem``. Links: one ``TransactWriteItems`` whose first action
    is that conditional put.
    """
    put: dict[str, Any] = {"TableName": table, "Item": item, "ConditionExpression": condition}
    if values:
        put["ExpressionAttributeValues"] = values
    if not links:
        dynamodb.put_item(**put)
        return "PutItem"
    actions: list[Any] = [{"Put": put}]
    actions += [{"Put": {"TableName": table, "Item": link}} for link in links]
    dynamodb.transact_write_items(TransactItems=actions)
    return "TransactWriteItems"
