"""Run the Lambda entry points in ``functions/`` locally, as Lambda would."""

from __future__ import annotations

import importlib.util
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cachesync.exceptions import LocalStackError

LambdaHandler = Callable[[dict[str, Any], Any], Any]
_FUNCTIONS_DIR: Final = "functions"
_load_numbers = itertools.count()


@dataclass
class LocalLambdaContext:
    """The attributes of Lambda's context object that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_seconds: int = 60

    @property
    def invoked_function_arn(self) -> str:
        """A well-formed ARN naming the local function."""
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        """The log group Lambda would use."""
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        """A local log stream name."""
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        """Local invocations are not cut short."""
        return self.timeout_seconds * 1000


def find_functions_dir(start: Path | None = None) -> Path:
    """The project's ``functions/`` folder: from ``start`` (default: cwd) upwards, else beside
    the package source (an editable install)."""
    candidates = [start or Path.cwd(), Path(__file__).resolve()]
    for origin in candidates:
        for folder in (origin, *origin.parents):
            if (folder / _FUNCTIONS_DIR).is_dir() and (folder / "shared" / "cachesync").is_dir():
                return folder / _FUNCTIONS_DIR
    raise LocalStackError("cannot find the project's functions/ folder; run from the checkout")


def function_names(functions_dir: Path | None = None) -> list[str]:
    """The names of the Lambda functions (one folder each, holding ``handler.py``)."""
    root = functions_dir or find_functions_dir()
    return sorted(p.parent.name for p in root.glob("*/handler.py"))


def load_handler(name: str, functions_dir: Path | None = None) -> LambdaHandler:
    """Import ``functions/<name>/handler.py`` afresh and return its ``lambda_handler``.

    Each call runs the module's initialisation again (as a new Lambda execution environment
    would), reading settings from the environment at that moment.
    """
    root = functions_dir or find_functions_dir()
    path = root / name / "handler.py"
    if not path.is_file():
        known = ", ".join(function_names(root))
        raise LocalStackError(f"no function {name!r} (known: {known})")
    module_name = f"cachesync_local_{name}_{next(_load_numbers)}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise LocalStackError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: LambdaHandler = module.lambda_handler
    return handler
