"""The README's curl calls, run as printed with the real ``curl`` and ``bash``, against a stack
started the way ``make run`` starts it (``cachesync local up``: DynamoDB Local, moto, the event
pump, the demo documents, the query API under gunicorn and its demo keys).

Each call in the README's block that ends with a ``# NNN`` comment must answer that status.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from cachesync.local.env_file import LOCAL_ENV_FILE, read_env_file
from tests.e2e.make_run import RunningStack, clean_environment

REPOSITORY = Path(__file__).resolve().parents[2]
README = REPOSITORY / "README.md"
BLOCK_MARKER = "<!-- readme-curl:"
# A command whose status the README states: `curl ... # 404: names no acme`.
EXPECTED_STATUS = re.compile(r"^curl .*#\s*(\d{3})\b")
STATUS_LINE = re.compile(r"^HTTP/[\d.]+ (\d{3})", re.MULTILINE)
# Fewer demo documents than `make run`'s 300 (the same deterministic set, its first ones): the
# README's documents and enough of acme's for two pages are among them, indexed in seconds.
DEMO_COUNT = 60


def readme_curl_block(text: str) -> str:
    """The bash block that follows the README's curl marker."""
    start = text.index(BLOCK_MARKER)
    opening = text.index("```bash\n", start) + len("```bash\n")
    return text[opening : text.index("\n```", opening) + 1]


def expected_statuses(block: str) -> list[int]:
    """The statuses the block's commented curl calls must answer, in order."""
    return [int(m.group(1)) for line in block.splitlines() if (m := EXPECTED_STATUS.match(line))]


def with_markers(block: str) -> str:
    """The block unchanged, with a marker line printed before each commented curl call."""
    lines = []
    number = 0
    for line in block.splitlines():
        if EXPECTED_STATUS.match(line):
            lines.append(f"printf '\\n@@call {number}@@\\n'")
            number += 1
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_make_run_prints_and_writes_the_api_url_the_console_and_the_demo_keys(
    make_run_stack: RunningStack,
) -> None:
    # Given the running stack / When its screen and env file are read
    screen = "".join(make_run_stack.output)
    values = read_env_file(make_run_stack.folder / LOCAL_ENV_FILE)
    # Then the API's base URL (without /v1) and three distinct keys are exported in both
    url = values["CACHESYNC_API_URL"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    keys = ("CACHESYNC_API_KEY", "CACHESYNC_API_KEY_RESTRICTED", "CACHESYNC_ADMIN_API_KEY")
    assert all(values[name].startswith("csk_") for name in keys)
    assert len({values[name] for name in keys}) == len(keys)
    for name in ("CACHESYNC_API_URL", *keys):
        assert f"export {name}={values[name]}" in screen
    assert f"{url}/v1/docs" in screen
    # And the console's URL, and how to subscribe a local webhook receiver
    assert f"{url}/console" in screen
    assert "cachesync webhooks add --url http://127.0.0.1:" in screen
    assert "cachesync webhooks listen --port" in screen
    # And the change feed's resources are in the env file (the CLI's webhooks commands use it)
    for name in (
        "CACHESYNC_CHANGE_FEED_TABLE_NAME",
        "CACHESYNC_WEBHOOKS_TABLE_NAME",
        "CACHESYNC_WEBHOOK_DELIVERIES_TABLE_NAME",
        "CACHESYNC_WEBHOOK_DELIVERY_QUEUE_URL",
    ):
        assert values[name]
    assert values["CACHESYNC_WEBHOOK_ALLOW_LOOPBACK"] == "true"
    # And the token secret is not shown, only kept in the env file (`cachesync keys create
    # --require-signing` derives signing secrets from it, as the stack's API does)
    assert "CACHESYNC_API_TOKEN_SECRET" not in screen
    assert len(values["CACHESYNC_API_TOKEN_SECRET"]) >= 32


def test_the_readme_curl_calls_answer_as_documented(make_run_stack: RunningStack) -> None:
    # Given the README's block of curl calls, and the real curl and bash
    assert shutil.which("curl"), "curl is needed (apt-get install curl)"
    assert shutil.which("jq"), "jq is needed (make setup installs it)"
    block = readme_curl_block(README.read_text(encoding="utf-8"))
    expected = expected_statuses(block)
    assert len(expected) >= 10, "the README's curl block lost its commented calls"
    # When it runs as printed, in the folder of the stack's env file (`source .cachesync/...`)
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", with_markers(block)],
        cwd=make_run_stack.folder,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then it completes, and each commented call answers the status written next to it
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    sections = re.split(r"^@@call \d+@@$", result.stdout, flags=re.MULTILINE)[1:]
    assert len(sections) == len(expected)
    answered = []
    for section in sections:
        status = STATUS_LINE.search(section)
        answered.append(int(status.group(1)) if status else None)
    assert answered == expected, result.stdout[-6000:]
    # And the page walk reached every acme document over more than one page of the first query
    walk = re.search(r"^acme: (\d+) documents in (\d+) pages$", result.stdout, re.MULTILINE)
    assert walk is not None, result.stdout[-2000:]
    assert int(walk.group(1)) > 5  # more than the first page of 5 the README shows
