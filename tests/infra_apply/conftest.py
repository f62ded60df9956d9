"""Fixtures for the checks of what ``make infra-apply-local`` created in moto.

tools/terraform_local.py runs these tests between ``terraform apply`` and the second plan, and
passes in the environment where moto listens and where ``terraform output -json`` was saved.
They are not part of ``make test`` (its paths do not include this folder) and fail at once when
run any other way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.unit.test_infra import INFRA, Terraform

ENVIRONMENT = ("INFRA_APPLY_MOTO_ENDPOINT", "INFRA_APPLY_OUTPUTS", "INFRA_APPLY_BUCKET")


@pytest.fixture(scope="session")
def applied() -> dict[str, str]:
    """Where the applied configuration lives: moto's URL, the outputs file, the bucket."""
    missing = [name for name in ENVIRONMENT if not os.environ.get(name)]
    if missing:
        pytest.fail(f"run these through `make infra-apply-local` (unset: {', '.join(missing)})")
    return {name: os.environ[name] for name in ENVIRONMENT}


@pytest.fixture(scope="session")
def outputs(applied: dict[str, str]) -> dict[str, Any]:
    """``terraform output -json`` of the apply, as name -> value."""
    raw = json.loads(Path(applied["INFRA_APPLY_OUTPUTS"]).read_text(encoding="utf-8"))
    return {name: entry["value"] for name, entry in raw.items()}


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    """build/package-manifest.json: what `make package` built and apply uploaded."""
    path = INFRA.parent / "build" / "package-manifest.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="session")
def tf() -> Terraform:
    """infra/ parsed by python-hcl2: the expectations come from the configuration itself."""
    return Terraform(INFRA)


@pytest.fixture(scope="session")
def aws(applied: dict[str, str]) -> Any:
    """A factory of boto3 clients bound to the moto server apply ran against."""

    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=applied["INFRA_APPLY_MOTO_ENDPOINT"])

    return client
