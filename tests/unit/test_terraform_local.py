"""tools/terraform_local.py's reading of a failed apply: when a second, fresh attempt is fair."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "terraform_local.py"

# The failure of CI run 14, as terraform printed it.
DUPLICATE_POLICY = (
    "Error: creating IAM Policy (cachesync-operator): operation error IAM: CreatePolicy, "
    "https response error StatusCode: 409, RequestID: 7lRX, EntityAlreadyExists: A policy "
    "called cachesync-operator already exists. Duplicate names are not allowed."
)


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("terraform_local_under_test", TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def write_log(folder: Path, *lines: str) -> Path:
    log = folder / "apply.log"
    log.write_text("\n".join(["aws_iam_role.x: Creating...", "", *lines, ""]), encoding="utf-8")
    return log


def test_a_create_meeting_its_own_resource_is_worth_a_fresh_attempt(
    tool: ModuleType, tmp_path: Path
) -> None:
    # Given an apply whose only error is the duplicate create seen in CI
    log = write_log(tmp_path, DUPLICATE_POLICY)
    # When / Then it is read as the emulator's symptom
    assert tool.duplicate_create(log) is True


@pytest.mark.parametrize(
    "errors",
    [
        # Any other error alongside: a real failure, not retried.
        (DUPLICATE_POLICY, "Error: creating Lambda Function (x): InvalidParameterValueException"),
        # A plain error on create.
        ("Error: creating SQS Queue (x): AccessDenied",),
        # "already exists" outside a create (an update): not the retried-request symptom.
        ("Error: updating IAM Role (x): EntityAlreadyExists: already exists",),
        # No error line at all (the apply timed out, for example).
        (),
    ],
)
def test_anything_else_fails_at_once(
    tool: ModuleType, tmp_path: Path, errors: tuple[str, ...]
) -> None:
    # Given an apply log with other errors (or none)
    log = write_log(tmp_path, *errors)
    # When / Then no second attempt is made
    assert tool.duplicate_create(log) is False


def test_a_missing_log_is_no_reason_to_retry(tool: ModuleType, tmp_path: Path) -> None:
    # Given no apply log (apply never started) / When / Then
    assert tool.duplicate_create(tmp_path / "apply.log") is False


def test_server_errors_are_picked_from_the_moto_log(tool: ModuleType, tmp_path: Path) -> None:
    # Given a moto log with ordinary answers, one 500 and a traceback
    log = tmp_path / "moto.log"
    log.write_text(
        '127.0.0.1 - - [01/Dec/2026 12:46:05] "POST / HTTP/1.1" 200 -\n'
        '127.0.0.1 - - [01/Dec/2026 12:46:06] "POST / HTTP/1.1" 500 -\n'
        "Traceback (most recent call last):\n"
        '127.0.0.1 - - [01/Dec/2026 12:46:07] "GET /x HTTP/1.1" 404 -\n',
        encoding="utf-8",
    )
    # When / Then only the 500 and the traceback are reported
    found = tool.moto_server_errors(log)
    assert len(found) == 2
    assert '" 500' in found[0]
    assert found[1].startswith("Traceback")
