"""Run infra/ with a real Terraform CLI against a moto server on this machine.

Two commands, one per Makefile target:

* ``check`` (``make infra-check``, part of ``make test``): ``terraform fmt -check -recursive``,
  ``init`` (the provider from a filesystem mirror when one is on disk, the registry otherwise),
  ``validate``, and a ``plan`` against a moto server started for it. The plan uses placeholder
  Lambda zips, so it needs no ``make package``. Without a terraform CLI on PATH it prints one
  line saying so and succeeds: the python-hcl2 tests and checkov still run.
* ``apply-local`` (``make infra-apply-local``, not in ``make test``): ``apply`` with the zips
  ``make package`` built for this machine's architecture, the checks of what was created
  (``tests/infra_apply``, pytest, through boto3), a second ``plan -detailed-exitcode`` that must
  show no change, then ``destroy``. The whole run is bounded by ``--timeout``; on a failure or
  timeout it still tries ``destroy`` and always stops moto.

What users deploy is never changed. Terraform runs in a working copy of infra/ under
``build/terraform/<command>/``: the ``*.tf`` files and ``.terraform.lock.hcl`` of infra/, plus
files from ``infra/emulator/``:

* ``moto_endpoint.tf`` and ``moto_provider_override.tf`` (both commands): every service the
  configuration uses sent to moto, the ``skip_*`` flags, path-style S3. An ``_override.tf`` file
  is merged into the provider block of ``versions.tf`` by Terraform itself.
* ``moto_gaps_override.tf`` (``apply-local`` only): the workarounds for what moto does not
  implement, each commented with the gap it covers.

Terraform's working files (``.terraform/``, plans, state, logs) stay in that working copy under
build/, which git ignores. Credentials are dummies, passed in the environment only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, ParamSpec, TypeVar

ROOT: Final = Path(__file__).resolve().parent.parent
INFRA: Final = ROOT / "infra"
EMULATOR: Final = INFRA / "emulator"
WORK_ROOT: Final = ROOT / "build" / "terraform"
APPLY_CHECKS: Final = ROOT / "tests" / "infra_apply"

P = ParamSpec("P")
R = TypeVar("R")

PROVIDER_SOURCE: Final = "registry.terraform.io/hashicorp/aws"
# Where a filesystem mirror of the provider may be (TF_PLUGIN_MIRROR first): the layout is
# <mirror>/registry.terraform.io/hashicorp/aws/<version>/<os>_<arch>/.
MIRROR_CANDIDATES: Final = (
    os.environ.get("TF_PLUGIN_MIRROR", ""),
    "/opt/tf-plugins",
    str(Path.home() / ".terraform.d" / "plugins"),
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
)

PROVIDER_FILES: Final = ("moto_endpoint.tf", "moto_provider_override.tf")
GAPS_FILE: Final = "moto_gaps_override.tf"

REGION: Final = "us-east-1"
BUCKET: Final = "cachesync-infra-local"  # the "existing" documents bucket, created in moto
# Every function folder, as `make package` finds them (tools/package_lambdas.py) and infra/ deploys
# them (local.functions; tests/unit/test_infra.py checks the two agree).
FUNCTIONS: Final = tuple(
    sorted(path.parent.name for path in (ROOT / "functions").glob("*/handler.py"))
)
DESTROY_GRACE_SECONDS: Final = 240  # destroy after a timeout gets this much more time
APPLY_ATTEMPTS: Final = 2  # a second, fresh attempt only after duplicate_create()
# How the provider reports a create that met an existing resource of the same name.
DUPLICATE_MARKS: Final = (
    "EntityAlreadyExists",
    "ResourceConflictException",
    "ResourceInUseException",
    "QueueAlreadyExists",
    "already exists",
)


class InfraRunError(Exception):
    """A step failed; the message says which and where its log is."""


@dataclass
class Deadline:
    """The time left of the run's budget (``--timeout``)."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        """Seconds left; never negative."""
        return max(0.0, self.seconds - (time.monotonic() - self.started))


def say(message: str) -> None:
    """One progress line, prefixed so it stands out in make's output."""
    print(f"[infra] {message}", flush=True)


def architecture_of_machine() -> str:
    """This machine's Lambda architecture name (``uname -m``: x86_64, aarch64/arm64)."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64"
    raise InfraRunError(f"no Lambda architecture for machine type {machine!r}")


def provider_mirror() -> Path | None:
    """The first filesystem mirror on disk holding the aws provider, if any."""
    for candidate in MIRROR_CANDIDATES:
        if candidate and (Path(candidate) / PROVIDER_SOURCE).is_dir():
            return Path(candidate)
    return None


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# ---------------------------------------------------------------------- moto


@contextmanager
def moto_server(log_path: Path) -> Iterator[str]:
    """A moto server on a free port for the duration of the block; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    executable = Path(sys.executable).with_name("moto_server")
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(  # noqa: S603 - our own venv's moto_server
            [str(executable), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_serving(url, process)
        say(f"moto server on {url} (pid {process.pid}, log {relative(log_path)})")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until_serving(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Block until moto answers HTTP, or fail if it exits or takes longer than ``timeout``."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise InfraRunError(f"moto server exited with {process.returncode} before serving")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):  # noqa: S310 - local URL
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise InfraRunError(f"moto server not serving on {url} after {timeout:.0f} s")


def create_documents_bucket(endpoint: str) -> None:
    """The documents bucket infra/ turns cachesync on for (it must exist: a data source)."""
    import boto3  # the project's venv has it; imported here so --help works without it

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
    )
    s3.create_bucket(Bucket=BUCKET)


# ---------------------------------------------------------------------- terraform


class Terraform:
    """The terraform CLI run in one working copy of infra/, each step logged to a file."""

    def __init__(self, binary: str, workdir: Path, deadline: Deadline) -> None:
        self.binary = binary
        self.workdir = workdir
        self.deadline = deadline
        self.env = self._environment()

    def _environment(self) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            # Nothing from the caller's AWS setup may point Terraform at a real account.
            if not name.startswith(("AWS_", "TF_VAR_"))
        }
        env.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's dummy credentials
            AWS_REGION=REGION,
            AWS_EC2_METADATA_DISABLED="true",
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",  # no version check call to HashiCorp
        )
        mirror = provider_mirror()
        if mirror is not None:
            config = self.workdir / "terraform.rc"
            config.write_text(mirror_cli_config(mirror), encoding="utf-8")
            env["TF_CLI_CONFIG_FILE"] = str(config)
        return env

    def run(self, step: str, *arguments: str, allowed_exit_codes: Sequence[int] = (0,)) -> int:
        """``terraform <arguments>``; its output goes to ``<step>.log``. Returns the exit code,
        raises InfraRunError on any other code or when the deadline passes."""
        log_path = self.workdir / f"{step}.log"
        started = time.monotonic()
        with log_path.open("w", encoding="utf-8") as log:
            process = subprocess.Popen(  # noqa: S603 - the terraform found on PATH
                [self.binary, *arguments, "-no-color"],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code = process.wait(timeout=self.deadline.remaining())
            except subprocess.TimeoutExpired:
                stop(process)
                raise InfraRunError(
                    f"terraform {step}: timed out (budget {self.deadline.seconds:.0f} s); "
                    f"log {relative(log_path)}"
                ) from None
            except KeyboardInterrupt:
                # Terraform runs in its own session (a timeout must not hit this process): pass
                # the Ctrl-C on, so that it stops too.
                stop(process)
                raise
        elapsed = time.monotonic() - started
        if code not in allowed_exit_codes:
            tail = "\n".join(log_path.read_text(encoding="utf-8").splitlines()[-40:])
            raise InfraRunError(
                f"terraform {step} failed (exit {code}); log {relative(log_path)}:\n{tail}"
            )
        say(f"terraform {step}: ok in {elapsed:.1f} s")
        return code

    def output_json(self) -> dict[str, object]:
        """``terraform output -json`` as a dict of name -> {value, type, sensitive}."""
        completed = subprocess.run(  # noqa: S603 - the terraform found on PATH
            [self.binary, "output", "-json"],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=max(1.0, self.deadline.remaining()),
            check=True,
        )
        outputs: dict[str, object] = json.loads(completed.stdout)
        return outputs


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a terraform process group: SIGINT first (Terraform then stops cleanly and releases
    its state lock), SIGKILL if it is still running 20 s later."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def mirror_cli_config(mirror: Path) -> str:
    """A CLI configuration installing the aws provider from ``mirror`` only (the registry for
    any other provider, of which infra/ has none)."""
    return (
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        f'    include = ["{PROVIDER_SOURCE}"]\n'
        "  }\n"
        "  direct {\n"
        f'    exclude = ["{PROVIDER_SOURCE}"]\n'
        "  }\n"
        "}\n"
    )


def prepare_working_copy(workdir: Path, emulator_files: Sequence[str]) -> None:
    """``workdir`` holding infra/'s configuration, its lock file and ``emulator_files``; any
    earlier state and plans are removed, ``.terraform/`` (the installed provider) is kept."""
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in [*workdir.glob("*.tf"), *workdir.glob("*.tfstate*"), *workdir.glob("*.tfplan")]:
        stale.unlink()
    for source in sorted(INFRA.glob("*.tf")):
        shutil.copy2(source, workdir / source.name)
    shutil.copy2(INFRA / ".terraform.lock.hcl", workdir / ".terraform.lock.hcl")
    for name in emulator_files:
        shutil.copy2(EMULATOR / name, workdir / name)


def placeholder_artifacts(folder: Path) -> Path:
    """Stand-ins for ``make package``'s output, enough for a plan (which only hashes the zips):
    a manifest for the default architecture and Python, and one tiny zip per artifact."""
    (folder / "lambda" / "functions").mkdir(parents=True, exist_ok=True)
    zips = [folder / "lambda" / "layer.zip"]
    zips += [folder / "lambda" / "functions" / f"{name}.zip" for name in FUNCTIONS]
    for path in zips:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("placeholder.txt", "make infra-check plans with stand-in code\n")
    manifest = {"architecture": "arm64", "python_version": "3.12", "placeholder": True}
    (folder / "package-manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def common_variables(endpoint: str) -> list[str]:
    """The ``-var`` arguments every plan and apply here shares."""
    return [
        f"-var=moto_endpoint={endpoint}",
        f"-var=aws_region={REGION}",
        f"-var=documents_bucket_name={BUCKET}",
    ]


def relative(path: Path) -> str:
    """``path`` relative to the repository, for messages."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------- commands


def check(binary: str, timeout: float) -> None:
    """fmt, init, validate, and a plan against moto (``make infra-check``)."""
    deadline = Deadline(timeout)
    workdir = WORK_ROOT / "check"
    prepare_working_copy(workdir, PROVIDER_FILES)
    terraform = Terraform(binary, workdir, deadline)
    terraform.run("fmt", "fmt", "-check", "-recursive", "-diff", str(INFRA))
    initialise(terraform)
    terraform.run("validate", "validate")
    artifacts = placeholder_artifacts(workdir / "placeholder-build")
    with moto_server(workdir / "moto.log") as endpoint:
        create_documents_bucket(endpoint)
        terraform.run(
            "plan",
            "plan",
            "-input=false",
            "-out=check.tfplan",
            *common_variables(endpoint),
            f"-var=build_dir={artifacts}",
        )
    say(f"plan: {plan_summary(workdir / 'plan.log')}")


def initialise(terraform: Terraform) -> None:
    """``terraform init`` honouring the committed lock file, from the mirror when present."""
    mirror = provider_mirror()
    say(
        f"provider from the filesystem mirror {mirror}"
        if mirror
        else "no provider mirror on disk: terraform init uses the registry"
    )
    terraform.run("init", "init", "-input=false", "-lockfile=readonly")


def plan_summary(log_path: Path) -> str:
    """The ``Plan: ...`` line of a plan's log."""
    for line in log_path.read_text(encoding="utf-8").splitlines():
        if line.startswith(("Plan:", "No changes.")):
            return line
    return "(no summary line)"


def apply_local(binary: str, timeout: float, architecture: str) -> None:
    """apply, check through boto3, plan again (no changes), destroy (``make infra-apply-local``)."""
    deadline = Deadline(timeout)
    workdir = WORK_ROOT / "apply-local"
    prepare_working_copy(workdir, [*PROVIDER_FILES, GAPS_FILE])
    terraform = Terraform(binary, workdir, deadline)
    build = ROOT / "build"
    if not (build / "package-manifest.json").is_file():
        raise InfraRunError("no build/package-manifest.json: run make package first")
    manifest = json.loads((build / "package-manifest.json").read_text(encoding="utf-8"))
    if manifest.get("architecture") != architecture:
        raise InfraRunError(
            f"build/ holds artifacts for {manifest.get('architecture')}, not {architecture}: "
            f"run make package LAMBDA_ARCHITECTURE={architecture}"
        )
    variables = [
        f"-var=build_dir={build}",
        f"-var=lambda_architecture={architecture}",
        f"-var=lambda_runtime=python{manifest['python_version']}",
        # Deletion protection would refuse the DeleteTable of destroy.
        "-var=deletion_protection=false",
    ]
    timings: dict[str, float] = {}
    initialise(terraform)
    for attempt in range(1, APPLY_ATTEMPTS + 1):
        try:
            apply_on_fresh_moto(terraform, deadline, variables, timings)
        except InfraRunError as error:
            if attempt == APPLY_ATTEMPTS or not duplicate_create(workdir / "apply.log"):
                raise
            kept = keep_attempt_logs(workdir, attempt)
            say(
                "apply failed on a create that found its own resource already there: a request "
                "the provider's SDK sent again after moto dropped or delayed the first answer "
                f"({error.args[0].splitlines()[0]}). The logs of attempt {attempt} are kept as "
                f"{', '.join(kept)}; trying once more on a fresh moto server."
            )
            for stale in workdir.glob("*.tfstate*"):
                stale.unlink()
        else:
            return


def apply_on_fresh_moto(
    terraform: Terraform, deadline: Deadline, variables: Sequence[str], timings: dict[str, float]
) -> None:
    """One apply / check / plan / destroy cycle on a moto server of its own."""
    workdir = terraform.workdir
    with moto_server(workdir / "moto.log") as endpoint:
        create_documents_bucket(endpoint)
        variables = [*common_variables(endpoint), *variables]
        failure: InfraRunError | None = None
        try:
            apply_check_and_plan_again(terraform, endpoint, variables, timings)
        except InfraRunError as error:
            failure = error
        # Also after a failure or a timeout: the destroy is part of what is checked, and it
        # gets DESTROY_GRACE_SECONDS beyond the run's budget.
        saved_deadline = terraform.deadline
        terraform.deadline = Deadline(deadline.remaining() + DESTROY_GRACE_SECONDS)
        try:
            timed(
                timings, "destroy", terraform.run, "destroy", "destroy", "-auto-approve", *variables
            )
        except InfraRunError as error:
            if failure is None:
                failure = error
            else:
                say(f"destroy failed too: {error}")
        finally:
            terraform.deadline = saved_deadline
        say("times: " + ", ".join(f"{step} {seconds:.0f} s" for step, seconds in timings.items()))
        if failure is not None:
            server_errors = moto_server_errors(workdir / "moto.log")
            if server_errors:
                say("moto answered with server errors:\n" + "\n".join(server_errors))
            raise failure


def duplicate_create(apply_log: Path) -> bool:
    """Whether apply failed only because a create met the very resource it was creating.

    Seen once in CI (``CreatePolicy`` answered 409 ``EntityAlreadyExists`` on a fresh moto): the
    SDK resends a request whose answer it did not get, and moto had already carried out the
    first. Nothing in infra/ creates one name twice (a real duplicate fails ``plan`` and the
    python-hcl2 tests), so this symptom is the emulator's, and one fresh attempt is fair.
    """
    if not apply_log.is_file():
        return False
    errors = [
        line
        for line in apply_log.read_text(encoding="utf-8").splitlines()
        if line.startswith("Error: ")
    ]
    return bool(errors) and all(
        line.startswith("Error: creating ") and any(mark in line for mark in DUPLICATE_MARKS)
        for line in errors
    )


def keep_attempt_logs(workdir: Path, attempt: int) -> list[str]:
    """Rename this attempt's logs to ``<name>-attempt<N>.log``; returns the new paths."""
    kept = []
    for name in ("apply", "destroy", "moto"):
        log = workdir / f"{name}.log"
        if log.is_file():
            target = log.with_name(f"{name}-attempt{attempt}.log")
            log.replace(target)
            kept.append(relative(target))
    return kept


def moto_server_errors(moto_log: Path, limit: int = 20) -> list[str]:
    """The access-log lines of moto's 5xx answers and its tracebacks' last lines, at most
    ``limit``: what explains an apply that failed on the emulator's side."""
    if not moto_log.is_file():
        return []
    found = []
    for line in moto_log.read_text(encoding="utf-8", errors="replace").splitlines():
        if '" 5' in line or line.startswith(("Traceback", "Exception")):
            found.append(line)
    return found[:limit]


def apply_check_and_plan_again(
    terraform: Terraform, endpoint: str, variables: Sequence[str], timings: dict[str, float]
) -> None:
    """apply, the boto3 checks, then a plan that must show no change; raises InfraRunError."""
    workdir = terraform.workdir
    timed(timings, "apply", terraform.run, "apply", "apply", "-auto-approve", *variables)
    outputs_path = workdir / "outputs.json"
    outputs_path.write_text(json.dumps(terraform.output_json()), encoding="utf-8")
    timed(timings, "checks", run_apply_checks, endpoint, outputs_path, terraform.deadline)
    code = timed(
        timings,
        "plan",
        terraform.run,
        "plan-after-apply",
        "plan",
        "-detailed-exitcode",
        *variables,
        allowed_exit_codes=(0, 2),
    )
    if code == 2:
        raise InfraRunError(
            "the plan after apply is not empty (a perpetual diff); see "
            f"{relative(workdir / 'plan-after-apply.log')}"
        )


def timed(
    timings: dict[str, float],
    name: str,
    step: Callable[P, R],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """Run ``step`` and record its duration under ``name``."""
    started = time.monotonic()
    try:
        return step(*args, **kwargs)
    finally:
        timings[name] = time.monotonic() - started


def run_apply_checks(endpoint: str, outputs_path: Path, deadline: Deadline) -> None:
    """The pytest checks of tests/infra_apply against what apply created."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(
        INFRA_APPLY_MOTO_ENDPOINT=endpoint,
        INFRA_APPLY_OUTPUTS=str(outputs_path),
        INFRA_APPLY_BUCKET=BUCKET,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's dummy credentials
        AWS_DEFAULT_REGION=REGION,
    )
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(APPLY_CHECKS)]
    try:
        completed = subprocess.run(  # noqa: S603 - our own venv's pytest
            command, cwd=ROOT, env=env, timeout=max(1.0, deadline.remaining()), check=False
        )
    except subprocess.TimeoutExpired:
        raise InfraRunError("the checks of the applied resources timed out") from None
    if completed.returncode != 0:
        raise InfraRunError("what apply created does not match infra/ (pytest output above)")
    say("checks of the applied resources: ok")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``check`` or ``apply-local``; exit status 0 on success, 1 on failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="fmt, init, validate, plan against moto")
    check_parser.add_argument("--timeout", type=float, default=300, help="seconds (300)")
    apply_parser = commands.add_parser("apply-local", help="apply, check, plan, destroy on moto")
    apply_parser.add_argument("--timeout", type=float, default=600, help="seconds (600)")
    apply_parser.add_argument(
        "--architecture",
        choices=("x86_64", "arm64"),
        default=None,
        help="Lambda architecture of build/ (default: this machine's)",
    )
    arguments = parser.parse_args(argv)

    binary = shutil.which("terraform")
    if binary is None:
        if arguments.command == "check":
            say("SKIPPED the Terraform steps (fmt, init, validate, plan): no terraform on PATH")
            return 0
        say("FAILED: infra-apply-local needs a terraform CLI (>= 1.5) on PATH")
        return 1
    started = time.monotonic()
    try:
        if arguments.command == "check":
            check(binary, arguments.timeout)
        else:
            apply_local(
                binary, arguments.timeout, arguments.architecture or architecture_of_machine()
            )
    except InfraRunError as error:
        say(f"FAILED after {time.monotonic() - started:.0f} s: {error}")
        return 1
    say(f"{arguments.command}: passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
