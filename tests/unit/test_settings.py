"""Settings are validated from the environment once, naming the variable on error."""

from __future__ import annotations

import pytest

from cachesync.exceptions import ConfigurationError
from cachesync.settings import SyncSettings, load_settings


def test_settings_load_from_prefixed_variables() -> None:
    settings = load_settings(
        SyncSettings,
        {
            "CACHESYNC_TABLE_NAME": "idx",
            "CACHESYNC_BUCKET_NAME": "docs",
            "CACHESYNC_RETENTION_DAYS": "7",
            "UNRELATED": "x",
        },
    )
    assert settings.table_name == "idx"
    assert settings.retention.days == 7
    assert settings.tombstone_ttl.days == 30


def test_a_missing_setting_names_the_variable() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(SyncSettings, {"CACHESYNC_BUCKET_NAME": "docs"})
    assert caught.value.variable == "CACHESYNC_TABLE_NAME"
    assert "required" in str(caught.value)


def test_an_invalid_setting_names_the_variable_and_the_reason() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(
            SyncSettings,
            {
                "CACHESYNC_TABLE_NAME": "idx",
                "CACHESYNC_BUCKET_NAME": "docs",
                "CACHESYNC_RETENTION_DAYS": "forever",
            },
        )
    assert caught.value.variable == "CACHESYNC_RETENTION_DAYS"
    assert "integer" in caught.value.reason
