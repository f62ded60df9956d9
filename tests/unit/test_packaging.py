"""tools/package_lambdas.py without the network: deterministic zips, what is (not) shipped.

The full build (pip against PyPI for the Lambda platform) is ``make package``; run it twice and
compare build/package-manifest.json to see identical hashes.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.util
import json
import os
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
PACKAGE: Final = ROOT / "shared" / "cachesync"
DEVELOPMENT_ONLY: Final = {"typer", "rich", "moto", "pytest", "hypothesis", "gunicorn"}


@pytest.fixture(scope="module")
def packager() -> ModuleType:
    path = ROOT / "tools" / "package_lambdas.py"
    spec = importlib.util.spec_from_file_location("package_lambdas_under_test", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_tree(root: Path, moment: int, mode: int) -> None:
    for name, content in {
        "b/module.py": b"print('b')\n",
        "a.py": b"A = 1\n",
        "b/__pycache__/module.cpython-312.pyc": b"\x00compiled",
        "c/data.json": b"{}",
        "stale.pyc": b"\x00",
    }.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
        os.utime(path, (moment, moment))


def test_zips_are_byte_identical_whatever_the_file_times_and_modes(
    packager: ModuleType, tmp_path: Path
) -> None:
    make_tree(tmp_path / "one", moment=1_000_000_000, mode=0o600)
    make_tree(tmp_path / "two", moment=1_700_000_000, mode=0o755)
    first, second = tmp_path / "one.zip", tmp_path / "two.zip"
    packager.write_zip(first, packager.tree_files(tmp_path / "one"))
    packager.write_zip(second, packager.tree_files(tmp_path / "two"))
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        infos = archive.infolist()
    assert names == ["a.py", "b/module.py", "c/data.json"]  # sorted, no bytecode
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} == {0o100644}


def test_artifact_facts_match_terraform_filebase64sha256(
    packager: ModuleType, tmp_path: Path
) -> None:
    make_tree(tmp_path / "tree", moment=0, mode=0o644)
    archive = tmp_path / "out" / "x.zip"
    packager.write_zip(archive, packager.tree_files(tmp_path / "tree"))
    facts = packager.artifact_facts(archive, tmp_path / "out")
    digest = hashlib.sha256(archive.read_bytes()).digest()
    assert facts["path"] == "x.zip"
    assert facts["sha256"] == digest.hex()
    assert facts["base64_sha256"] == base64.b64encode(digest).decode()
    assert facts["files"] == 3
    assert facts["unzipped_bytes"] == len(b"print('b')\n") + len(b"A = 1\n") + len(b"{}")


def test_up_to_date_only_with_the_same_inputs_and_intact_artifacts(
    packager: ModuleType, tmp_path: Path
) -> None:
    assert not packager.up_to_date(tmp_path, "key")
    make_tree(tmp_path / "tree", moment=0, mode=0o644)
    artifacts = {}
    for folder in packager.function_folders():
        path = tmp_path / "lambda" / "functions" / f"{folder.name}.zip"
        packager.write_zip(path, packager.tree_files(tmp_path / "tree"))
        artifacts[folder.name] = packager.artifact_facts(path, tmp_path)
    layer = tmp_path / "lambda" / "layer.zip"
    packager.write_zip(layer, packager.tree_files(tmp_path / "tree"))
    manifest = {
        "schema": packager.MANIFEST_SCHEMA,
        "fingerprint": "key",
        "layer": packager.artifact_facts(layer, tmp_path),
        "functions": artifacts,
    }
    (tmp_path / "package-manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert packager.up_to_date(tmp_path, "key")
    assert not packager.up_to_date(tmp_path, "other inputs")
    layer.write_bytes(b"corrupted")
    assert not packager.up_to_date(tmp_path, "key")


def test_layer_leaves_out_the_command_line_and_the_local_stack(packager: ModuleType) -> None:
    names = {name for name, _ in packager.package_sources()}
    assert "python/cachesync/runtime.py" in names
    assert "python/cachesync/py.typed" in names
    # (cachesync.client, the Python client of the API, is not the command line: "cli/" exactly)
    assert not [name for name in names if name.startswith("python/cachesync/cli/")]
    assert not [name for name in names if name.startswith("python/cachesync/local/")]
    assert all(name.startswith("python/cachesync/") for name in names)


def test_layer_ships_the_web_console_files(packager: ModuleType) -> None:
    # Given the console's files (the query_api Lambda serves /console from its layer)
    console = sorted(path.name for path in (PACKAGE / "api" / "console").iterdir())
    # When the layer's package files are listed
    names = {name for name, _ in packager.package_sources()}
    # Then every one of them is shipped, not only the Python modules
    assert console
    assert {f"python/cachesync/api/console/{name}" for name in console} <= names
    assert "python/cachesync/api/console/routes.py" in names


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def module_path(module: str) -> Path | None:
    """The source file of a cachesync module (``None`` for names that are not modules)."""
    parts = module.split(".")[1:]
    candidate = PACKAGE.joinpath(*parts)
    if candidate.with_suffix(".py").is_file():
        return candidate.with_suffix(".py")
    if (candidate / "__init__.py").is_file():
        return candidate / "__init__.py"
    return None


def test_handlers_need_only_packaged_modules(packager: ModuleType) -> None:
    shipped = {path.resolve() for _, path in packager.package_sources()}
    for folder in packager.function_folders():
        pending = [folder / "handler.py"]
        seen: set[Path] = set()
        while pending:
            path = pending.pop()
            if path in seen:
                continue
            seen.add(path)
            for module in imported_modules(path):
                assert module.split(".")[0] not in DEVELOPMENT_ONLY, (path, module)
                if module.split(".")[0] == "cachesync" and (found := module_path(module)):
                    assert found.resolve() in shipped, f"{folder.name} needs {module}"
                    pending.append(found)


def test_no_packaged_module_imports_a_development_dependency(packager: ModuleType) -> None:
    for name, path in packager.package_sources():
        if path.suffix != ".py":
            continue
        for module in imported_modules(path):
            assert module.split(".")[0] not in DEVELOPMENT_ONLY, (name, module)
            top = ".".join(module.split(".")[:2])
            assert top not in ("cachesync.cli", "cachesync.local"), (name, module)


def test_the_aws_sdk_is_left_to_the_runtime_unless_asked(packager: ModuleType) -> None:
    default = {packager.distribution_name(r) for r in packager.runtime_requirements(False)}
    assert "boto3" not in default
    assert {"aws-lambda-powertools", "pydantic", "tenacity"} <= default
    assert "boto3" in {packager.distribution_name(r) for r in packager.runtime_requirements(True)}
    assert packager.distribution_name("aws-lambda-powertools[tracer]>=3.4") == (
        "aws-lambda-powertools"
    )


@pytest.mark.parametrize(
    ("architecture", "tag"),
    [("arm64", "manylinux2014_aarch64"), ("x86_64", "manylinux2014_x86_64")],
)
def test_wheels_are_chosen_for_the_lambda_platform(
    packager: ModuleType, architecture: str, tag: str
) -> None:
    options = packager.platform_options(architecture, "3.12")
    assert "--only-binary=:all:" in options
    assert options[options.index("--implementation") + 1] == "cp"
    assert options[options.index("--python-version") + 1] == "3.12"
    platforms = [options[i + 1] for i, option in enumerate(options) if option == "--platform"]
    assert tag in platforms
    machine = "aarch64" if architecture == "arm64" else "x86_64"
    assert all(platform.endswith(f"_{machine}") for platform in platforms)


def test_the_local_http_server_is_never_a_lambda_dependency(packager: ModuleType) -> None:
    # Given the runtime requirements the layer is built from
    shipped = {packager.distribution_name(r) for r in packager.runtime_requirements(True)}
    # Then gunicorn (the local WSGI server of the query API) is not among them, and the build
    # refuses every development-only distribution, gunicorn included
    assert "gunicorn" not in shipped
    assert DEVELOPMENT_ONLY <= packager.FORBIDDEN_DISTRIBUTIONS
    # And query_api has its folder, so make package builds its zip
    assert "query_api" in {folder.name for folder in packager.function_folders()}
