"""The webhook retry schedule: exponential, capped, fully jittered, within SQS's ceiling."""

from __future__ import annotations

import random

from cachesync.retry_policies import BackoffSchedule
from cachesync.settings import WebhookDeliverySettings
from cachesync.stores.sqs_webhook_queue import MAX_VISIBILITY_SECONDS


def test_the_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    # Given the default schedule (one minute, doubling, capped at six hours)
    schedule = BackoffSchedule(base_seconds=60, max_seconds=21_600)
    # When the ceilings of the first attempts are listed
    ceilings = [schedule.ceiling(n) for n in range(1, 12)]
    # Then they double, then stay at the cap
    assert ceilings == [60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 21600, 21600]
    assert schedule.ceiling(10_000) == 21_600


def test_delays_are_fully_jittered_under_the_ceiling() -> None:
    # Given a seeded schedule
    schedule = BackoffSchedule(base_seconds=60, max_seconds=21_600)
    rng = random.Random(12)
    # When many delays after the 3rd failure are drawn
    delays = [schedule.delay(3, rng) for _ in range(2000)]
    # Then they spread over [0, 240] (full jitter), not bunched at the ceiling
    assert all(0 <= d <= 240 for d in delays)
    assert min(delays) < 24
    assert max(delays) > 216
    assert 100 < sum(delays) / len(delays) < 140


def test_the_default_budget_spans_hours_and_fits_sqs() -> None:
    # Given the default settings
    settings = WebhookDeliverySettings(table_name="index", bucket_name="docs")
    schedule = BackoffSchedule(
        base_seconds=settings.webhook_retry_base_seconds,
        max_seconds=settings.webhook_retry_max_seconds,
    )
    # When the longest waits of a message's retries are summed
    retries = range(1, settings.webhook_max_attempts)
    longest = sum(schedule.ceiling(n) for n in retries)
    # Then the budget is 12 attempts over up to about 20.5 hours (about half on average),
    # every single wait within SQS's 12 h visibility ceiling, the total within its 14 days
    assert settings.webhook_max_attempts == 12
    assert longest == 73_860
    assert all(schedule.ceiling(n) < MAX_VISIBILITY_SECONDS for n in retries)
    assert longest < 14 * 86_400
