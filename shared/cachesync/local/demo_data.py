"""A small, deterministic demo dataset: changes and announcements for several customers."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEMO_CUSTOMERS: Final = ("acme", "globex", "initech", "umbrella", "hooli", "stark")
_CHANGE_STATUSES: Final = (
    "draft",
    "submitted",
    "approved",
    "scheduled",
    "in_progress",
    "completed",
    "cancelled",
)
_ANNOUNCEMENT_STATUSES: Final = ("draft", "published", "archived")
_TOPICS: Final = (
    "Rotate TLS certificates",
    "Upgrade database engine",
    "Patch kernel",
    "Migrate DNS",
    "Resize cluster",
    "Renew licences",
    "Enable MFA",
    "Network maintenance",
)


def demo_documents(
    count: int, *, now: datetime | None = None, seed: int = 7
) -> Iterator[tuple[str, bytes]]:
    """``count`` (key, JSON) pairs spread over the last six months, reproducibly."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    for number in range(count):
        moment = now - timedelta(minutes=rng.randint(60, 180 * 24 * 60))
        customers = rng.sample(DEMO_CUSTOMERS, k=rng.choice((1, 1, 1, 2, 3)))
        title = f"{rng.choice(_TOPICS)} #{number}"
        if number % 4 == 3:
            doc_id = f"ANN-{number:05d}"
            body: dict[str, object] = {
                "object_type": "announcement",
                "announcement_id": doc_id,
                "title": title,
                "customers": customers,
                "announcement_type": rng.choice(("general", "maintenance", "security")),
                "status": rng.choice(_ANNOUNCEMENT_STATUSES),
                "posted_at": moment.isoformat(),
                "modified_at": (moment + timedelta(hours=1)).isoformat(),
            }
            key = f"announcements/{doc_id}.json"
        else:
            doc_id = f"CHG-{number:05d}"
            body = {
                "object_type": "change",
                "change_id": doc_id,
                "title": title,
                "customers": customers,
                "status": rng.choice(_CHANGE_STATUSES),
                "created_at": moment.isoformat(),
                "modified_at": (moment + timedelta(hours=2)).isoformat(),
            }
            key = (
                f"customers/{customers[0]}/changes/{doc_id}.json"
                if number % 5 == 0
                else f"changes/{doc_id}.json"
            )
        yield key, json.dumps(body).encode()


def upload_demo_documents(s3: S3Client, bucket: str, count: int, *, workers: int = 8) -> int:
    """Put the demo documents into ``bucket``; their S3 events index them. Returns the count."""

    def put(item: tuple[str, bytes]) -> None:
        key, body = item
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return sum(1 for _ in pool.map(put, demo_documents(count)))
