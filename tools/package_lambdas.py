"""Build the Lambda deployment artifacts under build/: deterministic zips Terraform deploys.

Layout (what infra/lambda.tf expects):

* ``build/lambda/layer.zip``: a layer, ``python/`` holding the cachesync package and its runtime
  dependencies (Powertools with the tracer extra and aws-xray-sdk, pydantic with its native
  pydantic-core wheel, tenacity, ...), as wheels for the Lambda platform and architecture.
* ``build/lambda/functions/<name>.zip``: one per ``functions/<name>/`` folder, its ``handler.py``
  (Lambda handler ``handler.lambda_handler``).
* ``build/package-manifest.json``: architecture, Python version, pinned dependency versions,
  sizes and hashes. Terraform refuses to deploy artifacts built for another architecture.

The AWS SDK (boto3, botocore, s3transfer and their dependencies jmespath, python-dateutil, six,
urllib3) is left out: the Lambda Python runtime provides it (``--include-boto3`` ships the
versions this environment was tested with instead). The command-line extras (typer, rich, moto)
and the local stack (``cachesync.local``, ``cachesync.cli``, gunicorn) are never shipped.

Versions are pinned to the ones installed in the environment running this script (the one the
tests ran in), resolved for the target platform by pip. The zips are deterministic: sorted
entries, fixed timestamps and permissions, no ``__pycache__``/``.pyc``, so two builds of the same
inputs are byte-identical. When the inputs have not changed since the last build (same
fingerprint, artifacts intact), nothing is rebuilt.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
PACKAGE_SOURCE: Final = ROOT / "shared" / "cachesync"
FUNCTIONS_SOURCE: Final = ROOT / "functions"
PYPROJECT: Final = ROOT / "pyproject.toml"

MANIFEST_SCHEMA: Final = 1
ZIP_DATE_TIME: Final = (1980, 1, 1, 0, 0, 0)
FILE_MODE: Final = 0o100644  # regular file, rw-r--r--
HANDLER: Final = "handler.lambda_handler"

# Wheel platform tags per Lambda architecture. The Python 3.12+ runtimes run on Amazon Linux 2023
# (glibc 2.34): manylinux2014 (glibc 2.17) and manylinux_2_28 wheels both load there.
PLATFORMS: Final = {
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64"),
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
}
PYTHON_VERSIONS: Final = ("3.12", "3.13")

# The AWS SDK and its dependencies: in the Lambda Python runtime already.
RUNTIME_PROVIDED: Final = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)
# Never in a deployment artifact: the command line, the local stack, their dependencies.
EXCLUDED_MODULES: Final = ("cli", "local")
# gunicorn serves the query API locally only (cachesync.local.api_server); in AWS, API Gateway
# calls query_api's handler directly.
FORBIDDEN_DISTRIBUTIONS: Final = frozenset(
    {"typer", "rich", "moto", "pytest", "hypothesis", "gunicorn"}
)

# Lambda quotas: 50 MB zipped for a direct upload, 250 MB unzipped for a function and its layers.
MAX_ZIPPED_BYTES: Final = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES: Final = 250 * 1024 * 1024


class PackagingError(Exception):
    """The artifacts cannot be built as asked."""


# ---------------------------------------------------------------------- deterministic zips


def is_packaged(relative: Path) -> bool:
    """Whether a file belongs in an artifact (no bytecode caches, no compiled bytecode)."""
    return "__pycache__" not in relative.parts and relative.suffix not in {".pyc", ".pyo"}


def tree_files(root: Path) -> list[tuple[str, Path]]:
    """Every packaged file under ``root``: (archive name, path), sorted by archive name."""
    files = [
        (path.relative_to(root).as_posix(), path)
        for path in root.rglob("*")
        if path.is_file() and is_packaged(path.relative_to(root))
    ]
    return sorted(files)


def write_zip(destination: Path, entries: Iterable[tuple[str, Path]]) -> None:
    """Write a byte-for-byte reproducible zip: given order, fixed times, modes and compression."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_suffix(".tmp")
    with zipfile.ZipFile(temporary, "w") as archive:
        for name, path in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever the build machine
            info.external_attr = FILE_MODE << 16
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    temporary.replace(destination)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def artifact_facts(path: Path, root: Path) -> dict[str, Any]:
    """Size, hashes (hex, and base64 as Terraform's filebase64sha256 prints it), contents."""
    digest = hashlib.sha256(path.read_bytes()).digest()
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    return {
        "path": path.relative_to(root).as_posix(),
        "bytes": path.stat().st_size,
        "unzipped_bytes": sum(info.file_size for info in infos),
        "files": len(infos),
        "sha256": digest.hex(),
        "base64_sha256": base64.b64encode(digest).decode("ascii"),
    }


# ---------------------------------------------------------------------- inputs


def package_sources() -> list[tuple[str, Path]]:
    """The cachesync package as shipped: archive names under ``python/cachesync/``."""
    files = []
    for name, path in tree_files(PACKAGE_SOURCE):
        if name.split("/", 1)[0] in EXCLUDED_MODULES:
            continue
        files.append((f"python/cachesync/{name}", path))
    return files


def function_folders() -> list[Path]:
    """Every ``functions/<name>/`` folder holding a ``handler.py``."""
    return sorted(path.parent for path in FUNCTIONS_SOURCE.glob("*/handler.py"))


def runtime_requirements(include_boto3: bool) -> list[str]:
    """cachesync's runtime dependencies (pyproject ``[project] dependencies``)."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    requirements = []
    for requirement in project["dependencies"]:
        if not include_boto3 and distribution_name(requirement) in RUNTIME_PROVIDED:
            continue
        requirements.append(requirement)
    return requirements


def distribution_name(requirement: str) -> str:
    """The normalised distribution name of a requirement string (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise PackagingError(f"cannot read a distribution name in {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def installed_pins() -> dict[str, str]:
    """name -> version of every distribution in this environment (the tested versions)."""
    pins = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            pins[distribution_name(name)] = distribution.version
    pins.pop("cachesync", None)
    return dict(sorted(pins.items()))


def fingerprint(arguments: argparse.Namespace, pins: dict[str, str]) -> str:
    """Everything the artifacts depend on, hashed: unchanged fingerprint, unchanged artifacts."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(label.encode("utf-8") + b"\0" + hashlib.sha256(data).digest())

    add("script", Path(__file__).read_bytes())
    add("pyproject", PYPROJECT.read_bytes())
    add("pins", json.dumps(pins, sort_keys=True).encode("utf-8"))
    add("architecture", arguments.architecture.encode("utf-8"))
    add("python", arguments.python_version.encode("utf-8"))
    add("boto3", str(arguments.include_boto3).encode("utf-8"))
    for name, path in package_sources():
        add(name, path.read_bytes())
    for folder in function_folders():
        for name, path in tree_files(folder):
            add(f"functions/{folder.name}/{name}", path.read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------- pip


def pip(*arguments: str) -> None:
    """Run this interpreter's pip; its output only on failure."""
    command = [sys.executable, "-m", "pip", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise PackagingError(
            f"pip failed ({result.returncode}): {' '.join(command)}\n{result.stdout}{result.stderr}"
        )


def platform_options(architecture: str, python_version: str) -> list[str]:
    """pip options selecting wheels for the Lambda platform, and nothing built from source."""
    options = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version]
    for tag in PLATFORMS[architecture]:
        options += ["--platform", tag]
    return options


def resolve(
    requirements: list[str], pins: dict[str, str], options: list[str], work: Path
) -> dict[str, str]:
    """The full dependency set for the target platform, constrained to the tested versions."""
    constraints = work / "constraints.txt"
    constraints.write_text(
        "".join(f"{name}=={version}\n" for name, version in pins.items()), encoding="utf-8"
    )
    report = work / "resolution.json"
    pip(
        "install",
        "--quiet",
        "--dry-run",
        "--ignore-installed",
        "--report",
        str(report),
        "--target",
        str(work / "resolve"),
        "--constraint",
        str(constraints),
        *options,
        *requirements,
    )
    resolved = {}
    for item in json.loads(report.read_text(encoding="utf-8"))["install"]:
        metadata = item["metadata"]
        resolved[distribution_name(metadata["name"])] = metadata["version"]
    return dict(sorted(resolved.items()))


# ---------------------------------------------------------------------- build


def build(arguments: argparse.Namespace, output: Path, pins: dict[str, str], key: str) -> None:
    """Resolve, install for the target platform, zip, and write the manifest."""
    options = platform_options(arguments.architecture, arguments.python_version)
    requirements = runtime_requirements(arguments.include_boto3)
    with tempfile.TemporaryDirectory(prefix="cachesync-package-") as temporary:
        work = Path(temporary)
        resolved = resolve(requirements, pins, options, work)
        shipped = {
            name: version
            for name, version in resolved.items()
            if arguments.include_boto3 or name not in RUNTIME_PROVIDED
        }
        forbidden = FORBIDDEN_DISTRIBUTIONS & set(shipped)
        if forbidden:
            raise PackagingError(f"development packages would be shipped: {sorted(forbidden)}")
        stage = work / "layer"
        pip(
            "install",
            "--quiet",
            "--no-deps",
            "--no-compile",
            "--target",
            str(stage / "python"),
            *options,
            *(f"{name}=={version}" for name, version in shipped.items()),
        )
        # Console scripts pip may write for dependencies: not importable, not needed.
        shutil.rmtree(stage / "python" / "bin", ignore_errors=True)
        layer_entries = [
            (f"python/{name}", path) for name, path in tree_files(stage / "python")
        ] + package_sources()
        lambda_dir = output / "lambda"
        shutil.rmtree(lambda_dir, ignore_errors=True)
        write_zip(lambda_dir / "layer.zip", sorted(layer_entries))
        for folder in function_folders():
            write_zip(lambda_dir / "functions" / f"{folder.name}.zip", tree_files(folder))

    manifest = {
        "schema": MANIFEST_SCHEMA,
        "fingerprint": key,
        "architecture": arguments.architecture,
        "python_version": arguments.python_version,
        "runtime": f"python{arguments.python_version}",
        "platforms": list(PLATFORMS[arguments.architecture]),
        "handler": HANDLER,
        "dependencies": shipped,
        "provided_by_runtime": {
            name: {"tested_with": pins.get(name), "resolved": resolved.get(name)}
            for name in sorted(RUNTIME_PROVIDED)
            if not arguments.include_boto3
        },
        "layer": artifact_facts(output / "lambda" / "layer.zip", output),
        "functions": {
            folder.name: artifact_facts(
                output / "lambda" / "functions" / f"{folder.name}.zip", output
            )
            for folder in function_folders()
        },
    }
    check_quotas(manifest)
    (output / "package-manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def check_quotas(manifest: dict[str, Any]) -> None:
    """Fail on artifacts Lambda would refuse."""
    layer = manifest["layer"]
    for name, facts in manifest["functions"].items():
        if facts["bytes"] > MAX_ZIPPED_BYTES:
            raise PackagingError(f"{name}.zip is over Lambda's 50 MB direct-upload limit")
        if facts["unzipped_bytes"] + layer["unzipped_bytes"] > MAX_UNZIPPED_BYTES:
            raise PackagingError(f"{name} and its layer are over Lambda's 250 MB unzipped limit")
    if layer["bytes"] > MAX_ZIPPED_BYTES:
        raise PackagingError("layer.zip is over Lambda's 50 MB direct-upload limit")


def up_to_date(output: Path, key: str) -> bool:
    """Whether the last build had these inputs and its artifacts are intact."""
    path = output / "package-manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        artifacts = [manifest["layer"], *manifest["functions"].values()]
        if manifest.get("fingerprint") != key or manifest.get("schema") != MANIFEST_SCHEMA:
            return False
        if set(manifest["functions"]) != {folder.name for folder in function_folders()}:
            return False
        return all(sha256_of(output / item["path"]) == item["sha256"] for item in artifacts)
    except (OSError, KeyError, ValueError):
        return False


def report(output: Path, *, rebuilt: bool) -> None:
    """Print what was built (or found up to date) and its sizes."""
    manifest = json.loads((output / "package-manifest.json").read_text(encoding="utf-8"))
    state = "built" if rebuilt else "up to date"
    where = output / "package-manifest.json"
    shown = where.relative_to(ROOT) if where.is_relative_to(ROOT) else where
    print(
        f"Lambda artifacts {state}: {manifest['runtime']} {manifest['architecture']} "
        f"(manifest: {shown})"
    )
    rows = [("layer.zip", manifest["layer"])] + [
        (f"functions/{name}.zip", facts) for name, facts in sorted(manifest["functions"].items())
    ]
    print(f"  {'artifact':<34}{'zipped':>12}{'unzipped':>12}{'files':>7}  sha256")
    for name, facts in rows:
        print(
            f"  {name:<34}{_size(facts['bytes']):>12}{_size(facts['unzipped_bytes']):>12}"
            f"{facts['files']:>7}  {facts['sha256'][:16]}"
        )
    shipped = ", ".join(f"{name} {version}" for name, version in manifest["dependencies"].items())
    print(f"  layer dependencies: {shipped}")
    if manifest["provided_by_runtime"]:
        print(
            "  from the Lambda runtime (not shipped): "
            + ", ".join(sorted(manifest["provided_by_runtime"]))
        )


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.1f} MB"
    return f"{count / 1024:.1f} KB"


# ---------------------------------------------------------------------- smoke test


def smoke_test(output: Path, interpreter: str) -> None:
    """Import every handler from the artifacts alone, as Lambda would (host platform only).

    A fresh ``interpreter`` without site-packages sees the function zip, the layer's ``python/``
    and the AWS SDK (this environment's, standing in for the runtime's); every
    ``lambda_handler`` must import and be callable. Proves the layer holds every module the
    handlers need, native wheels included.
    """
    manifest = json.loads((output / "package-manifest.json").read_text(encoding="utf-8"))
    probe = subprocess.run(  # noqa: S603
        [interpreter, "-I", "-S", "-c", "import sys; print(*sys.version_info[:2], sep='.')"],
        capture_output=True,
        text=True,
        check=True,
    )
    host = probe.stdout.strip()
    machine = {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64", "AMD64": "x86_64"}
    if (manifest["python_version"], manifest["architecture"]) != (
        host,
        machine.get(platform.machine()),
    ):
        raise PackagingError(
            f"--smoke-test needs artifacts for this machine and interpreter (python {host}, "
            f"{machine.get(platform.machine())}); these are for python "
            f"{manifest['python_version']} {manifest['architecture']} (see --smoke-python)"
        )
    with tempfile.TemporaryDirectory(prefix="cachesync-smoke-") as temporary:
        work = Path(temporary)
        with zipfile.ZipFile(output / manifest["layer"]["path"]) as archive:
            archive.extractall(work / "opt")
        sdk = work / "runtime"
        sdk.mkdir()
        if manifest["provided_by_runtime"]:
            for module in _sdk_modules():
                (sdk / module.name).symlink_to(module)
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_DEFAULT_REGION": "us-east-1",
            "CACHESYNC_TABLE_NAME": "cachesync-index",
            "CACHESYNC_BUCKET_NAME": "cachesync-documents",
            "CACHESYNC_IDEMPOTENCY_TABLE_NAME": "cachesync-idempotency",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        for name, facts in sorted(manifest["functions"].items()):
            task = work / "task" / name
            with zipfile.ZipFile(output / facts["path"]) as archive:
                archive.extractall(task)
            paths = [str(task), str(work / "opt" / "python"), str(sdk)]
            code = (
                "import sys; sys.path[:0] = " + repr(paths) + "\n"
                "import handler\n"
                "assert callable(handler.lambda_handler)\n"
                "leaked = sorted(m for m in sys.modules if m.split('.')[0] in "
                "{'typer', 'rich', 'moto', 'gunicorn'} "
                "or m.split('.')[:2] in (['cachesync', 'cli'], ['cachesync', 'local']))\n"
                "assert not leaked, leaked\n"
                "print(handler.__file__)\n"
            )
            result = subprocess.run(  # noqa: S603
                [interpreter, "-I", "-S", "-c", code],
                capture_output=True,
                text=True,
                env=environment,
                cwd=task,
                check=False,
            )
            if result.returncode != 0:
                raise PackagingError(f"{name}: the handler does not import\n{result.stderr}")
            print(f"  smoke test: {name} imports from its artifacts alone")


def _sdk_modules() -> Iterator[Path]:
    """The installed top-level modules of the AWS SDK distributions (the runtime's stand-in)."""
    for name in sorted(RUNTIME_PROVIDED):
        distribution = importlib.metadata.distribution(name)
        tops = (distribution.read_text("top_level.txt") or "").split()
        if not tops:  # no top_level.txt: derive from the recorded files
            tops = sorted(
                {
                    str(file).split("/", 1)[0].removesuffix(".py")
                    for file in distribution.files or []
                    if not str(file).split("/", 1)[0].endswith((".dist-info", ".data"))
                }
            )
        for top in tops:
            for candidate in (
                Path(str(distribution.locate_file(top))),
                Path(str(distribution.locate_file(f"{top}.py"))),
            ):
                if candidate.exists():
                    yield candidate


# ---------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Build (or confirm up to date) the artifacts; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--architecture", choices=sorted(PLATFORMS), default="arm64")
    parser.add_argument("--python-version", choices=PYTHON_VERSIONS, default="3.12")
    parser.add_argument("--output", type=Path, default=ROOT / "build")
    parser.add_argument(
        "--include-boto3",
        action="store_true",
        help="ship the AWS SDK in the layer (the tested versions) instead of the runtime's",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="then import every handler from the artifacts alone (host platform builds only)",
    )
    parser.add_argument(
        "--smoke-python",
        default=sys.executable,
        help="interpreter of the artifacts' Python version for --smoke-test (default: this one)",
    )
    arguments = parser.parse_args(argv)
    output = arguments.output.resolve()
    try:
        pins = installed_pins()
        key = fingerprint(arguments, pins)
        rebuilt = arguments.force or not up_to_date(output, key)
        if rebuilt:
            build(arguments, output, pins, key)
        report(output, rebuilt=rebuilt)
        if arguments.smoke_test:
            smoke_test(output, arguments.smoke_python)
    except PackagingError as error:
        print(f"package_lambdas: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
