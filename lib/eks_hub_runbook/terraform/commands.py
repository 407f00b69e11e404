"""The terraform CLI, run by subprocess: init, validate, plan, apply, destroy, output.

Every command runs with ``-chdir=<workspace>``, ``-input=false`` and ``-no-color``; plan,
apply and destroy stream ``-json`` events into a :class:`RunProgress` (progress bar, log
lines to a callback and to ``<workspace>/logs/terraform.log``). Apply and destroy retry
transient failures a bounded number of times; state is kept after every attempt, so a
re-run (or a retry) resumes where the last one stopped.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TerraformError
from . import adopt
from .events import Diagnostic, Event, PlannedChange, parse_line
from .progress import LogCallback, RunProgress, print_line
from .retry import RetryPolicy, all_transient
from .workspace import TFVARS_FILE, Workspace, load_state

TERRAFORM = "terraform"
LOCK_TIMEOUT = "-lock-timeout=120s"
MASK = "(sensitive)"


@dataclass
class RunResult:
    """What one terraform process did."""

    returncode: int
    events: list[Event] = field(default_factory=list)
    elapsed: float = 0.0
    done: int = 0
    failed: int = 0

    @property
    def errors(self) -> list[str]:
        """Error texts: error diagnostics, else plain ``Error:`` lines (commands without -json)."""
        found = [e.diagnostic.text() for e in self.events if e.diagnostic and e.diagnostic.severity == "error"]
        if found:
            return found
        lines = [e.message for e in self.events if e.kind == "text"]
        starts = [i for i, line in enumerate(lines) if line.lstrip("│ ").startswith("Error")]
        return [" ".join(line.lstrip("│╷╵ ") for line in lines[i:i + 8] if line.strip("│╷╵ ")) for i in starts]

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [e.diagnostic for e in self.events if e.diagnostic]


@dataclass
class Plan:
    """A plan's change summary. ``rows()`` is a list of dicts for ``pandas.DataFrame``."""

    changes: list[PlannedChange]
    plan_file: Path | None
    elapsed: float

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for change in self.changes:
            counts[change.action] = counts.get(change.action, 0) + 1
        return counts

    def rows(self) -> list[dict[str, str]]:
        return [c.as_row() for c in self.changes]


@dataclass
class ApplyResult:
    """Outcome of an apply or destroy: resources done, attempts used, seconds taken."""

    command: str
    done: int
    attempts: int
    elapsed: float


class Outputs(dict):
    """Terraform outputs by name. Sensitive values are real but masked in ``repr`` and ``public()``."""

    def __init__(self, values: dict[str, Any], sensitive: Iterable[str]):
        super().__init__(values)
        self.sensitive = frozenset(sensitive)

    def public(self) -> dict[str, Any]:
        """The outputs with sensitive values replaced by a mask (safe to display or record)."""
        return {k: (MASK if k in self.sensitive else v) for k, v in self.items()}

    def rows(self) -> list[dict[str, Any]]:
        return [{"output": k, "value": v} for k, v in sorted(self.public().items())]

    def __repr__(self) -> str:
        return f"Outputs({self.public()!r})"


# ---- process plumbing ------------------------------------------------------------------------


def _argv(workspace: Workspace, *args: str) -> list[str]:
    return [TERRAFORM, f"-chdir={workspace.directory}", *args]


def _capture(workspace: Workspace, *args: str) -> subprocess.CompletedProcess:
    """Run a short terraform command in the workspace and capture its output (no live view)."""
    return subprocess.run(_argv(workspace, *args), env=workspace.env(), capture_output=True, text=True)


def run(workspace: Workspace, args: Sequence[str], title: str, log: LogCallback | None = print_line,
        bar: bool = False) -> RunResult:
    """Run one terraform command, streaming its output into progress and log. Never raises on failure."""
    progress = RunProgress(title, workspace.log_dir / "terraform.log", callback=log, bar=bar)
    events: list[Event] = []
    try:
        process = subprocess.Popen(
            _argv(workspace, *args), cwd=workspace.directory, env=workspace.env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, bufsize=1,
        )
    except FileNotFoundError:
        progress.close()
        raise TerraformError("the terraform CLI was not found on PATH; install Terraform >= 1.9 (see notebook 00)") from None
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if not line.strip():
                continue
            event = parse_line(line)
            events.append(event)
            progress.handle(event)
        returncode = process.wait()
    except KeyboardInterrupt:
        # Let terraform stop cleanly and write its state before giving up.
        progress.line("interrupted: asking terraform to stop and save its state...")
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
        progress.close()
        raise
    result = RunResult(returncode, events, progress.elapsed, progress.done, progress.failed)
    progress.close()
    return result


def _raise_for(result: RunResult, title: str, workspace: Workspace, attempts: int = 1) -> None:
    errors = result.errors or [f"terraform exited with code {result.returncode}"]
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    error = TerraformError(
        f"terraform {title} failed{tried}:\n" + "\n".join(f"  {e}" for e in errors[-10:])
        + f"\nFull log: {workspace.log_dir / 'terraform.log'}"
    )
    error.errors = errors  # type: ignore[attr-defined]
    error.diagnostics = result.diagnostics  # type: ignore[attr-defined]
    raise error


def _adopt(workspace: Workspace, found: list[adopt.Orphan], log: LogCallback | None) -> None:
    """``terraform import`` each orphan an apply reported (see :mod:`.adopt`)."""
    identity = adopt.identity(json.loads(_capture(workspace, "state", "pull").stdout or "{}"))
    for orphan in found:
        import_id = orphan.import_id(identity, workspace.target, workspace.region, workspace.deployment)
        process = _capture(workspace, "import", "-input=false", "-no-color", LOCK_TIMEOUT, orphan.address, import_id)
        if process.returncode != 0:
            raise TerraformError(f"terraform import {orphan.address} {import_id} failed:\n"
                                 f"{(process.stderr or process.stdout).strip()[-2000:]}")
        if log:
            log(f"adopted {orphan.address} ({orphan.name}): it existed in AWS but not in the state")


# What Terraform says when the working directory needs ``terraform init`` again (the module's
# provider requirements or the lock file changed since the last init).
_NEEDS_INIT = ("terraform init", "Inconsistent dependency lock file", "Required plugins are not installed",
               "Module not installed")


def needs_init(result: RunResult) -> bool:
    """True if a failed run failed only because the working directory must be initialized again."""
    errors = result.errors
    return bool(errors) and all(any(marker in e for marker in _NEEDS_INIT) for e in errors)


def _run_retrying(workspace: Workspace, args: Sequence[str], title: str, log: LogCallback | None, bar: bool,
                  retry: RetryPolicy, adopt_orphans: bool = False) -> tuple[RunResult, int]:
    """Run until it succeeds; returns the last result and how many runs it took.

    A transient failure is retried up to ``retry.attempts`` runs. Adopting orphans is progress, not
    a retry, and spends none of them: an apply stops at the first orphan of a chain (the cluster
    before its node group, the node group before its add-ons), so a killed apply can leave one
    round of adoption per level. Each address is adopted at most once, so the rounds are bounded."""
    runs, retried, adopted, initialized = 1, 1, set[str](), args[0] == "init"
    while True:
        result = run(workspace, args, title if runs == 1 else f"{title} (attempt {runs})", log=log, bar=bar)
        if result.returncode == 0:
            return result, runs
        if not initialized and needs_init(result):
            # ensure_initialized only looks for the provider and the lock file: a module whose provider
            # requirements changed since needs init again (once; this run is not counted as an attempt).
            initialized = True
            init(workspace, log=log, retry=retry)
            continue
        found = [o for o in adopt.orphans(result.diagnostics, workspace.deployment)
                 if o.address not in adopted] if adopt_orphans else []
        if found:
            _adopt(workspace, found, log)
            adopted.update(o.address for o in found)
            runs += 1
            continue
        if retried >= retry.attempts or not all_transient(result.errors):
            _raise_for(result, title, workspace, runs)
        delay = retry.delay(retried)
        if log:
            log(f"transient failure ({result.errors[0][:200]}); retrying in {delay:.0f}s")
        time.sleep(delay)
        retried += 1
        runs += 1


# ---- commands --------------------------------------------------------------------------------


def init(workspace: Workspace, log: LogCallback | None = print_line, retry: RetryPolicy = RetryPolicy()) -> None:
    """``terraform init``: install the provider (mirror or registry) into the workspace."""
    _run_retrying(workspace, ["init", "-input=false", "-no-color"], "init", log, False, retry)


def ensure_initialized(workspace: Workspace, log: LogCallback | None = print_line) -> None:
    """Run ``init`` unless the workspace already has its provider and lock file."""
    if not (workspace.directory / ".terraform" / "providers").is_dir() or not (workspace.directory / ".terraform.lock.hcl").exists():
        init(workspace, log=log)


def validate(workspace: Workspace) -> list[Diagnostic]:
    """``terraform validate``: the configuration's warnings; raises TerraformError if it is invalid."""
    ensure_initialized(workspace, log=None)
    process = _capture(workspace, "validate", "-json", "-no-color")
    try:
        report = json.loads(process.stdout)
    except ValueError:
        raise TerraformError(f"terraform validate failed:\n{process.stdout}{process.stderr}") from None
    diagnostics = [Diagnostic(d.get("severity", "error"), d.get("summary", ""), d.get("detail", ""), d.get("address", ""))
                   for d in report.get("diagnostics", [])]
    if not report.get("valid", False):
        raise TerraformError("terraform validate failed:\n" + "\n".join(f"  {d.text()}" for d in diagnostics))
    return diagnostics


def fmt_check(module_dir: Path) -> list[str]:
    """Files ``terraform fmt -check`` would rewrite (empty when the module is formatted)."""
    process = subprocess.run([TERRAFORM, "fmt", "-check", "-list=true", "-no-color", str(module_dir)],
                             capture_output=True, text=True)
    if process.returncode not in (0, 3):
        raise TerraformError(f"terraform fmt failed: {process.stderr.strip()}")
    return [line.strip() for line in process.stdout.splitlines() if line.strip()]


def _targets(targets: Iterable[str]) -> list[str]:
    return [f"-target={t}" for t in targets]


def plan(workspace: Workspace, destroy: bool = False, targets: Iterable[str] = (), log: LogCallback | None = print_line,
         save: bool = False, retry: RetryPolicy = RetryPolicy(), title: str = "") -> Plan:
    """``terraform plan``: the changes an apply (or destroy) would make, as rows (address, action)."""
    ensure_initialized(workspace, log=log)
    plan_file = workspace.directory / ("destroy.tfplan" if destroy else "apply.tfplan")
    args = ["plan", "-input=false", "-no-color", "-json", LOCK_TIMEOUT, f"-parallelism={_parallelism(workspace)}",
            *_targets(targets)]
    if destroy:
        args.append("-destroy")
    if save:
        args.append(f"-out={plan_file.name}")
    result, _ = _run_retrying(workspace, args, title or ("plan (destroy)" if destroy else "plan"), log, False, retry)
    changes = [PlannedChange(e.address, e.action) for e in result.events
               if e.kind == "planned_change" and e.action not in ("noop", "read")]
    return Plan(changes=changes, plan_file=plan_file if save else None, elapsed=result.elapsed)


def apply(workspace: Workspace, targets: Iterable[str] = (), log: LogCallback | None = print_line, bar: bool = True,
          retry: RetryPolicy = RetryPolicy(), parallelism: int | None = None, title: str = "apply") -> ApplyResult:
    """``terraform apply -auto-approve``, retried on transient failures. Converges from any partial state."""
    ensure_initialized(workspace, log=log)
    args = ["apply", "-input=false", "-no-color", "-json", "-auto-approve", LOCK_TIMEOUT,
            f"-parallelism={parallelism or _parallelism(workspace)}", *_targets(targets)]
    result, attempts = _run_retrying(workspace, args, title, log, bar, retry, adopt_orphans=True)
    return ApplyResult("apply", result.done, attempts, result.elapsed)


def destroy(workspace: Workspace, targets: Iterable[str] = (), log: LogCallback | None = print_line, bar: bool = True,
            retry: RetryPolicy = RetryPolicy(), parallelism: int | None = None, title: str = "destroy") -> ApplyResult:
    """``terraform apply -destroy -auto-approve`` (all, or ``targets`` and what depends on them)."""
    ensure_initialized(workspace, log=log)
    args = ["apply", "-destroy", "-input=false", "-no-color", "-json", "-auto-approve", LOCK_TIMEOUT,
            f"-parallelism={parallelism or _parallelism(workspace)}", *_targets(targets)]
    result, attempts = _run_retrying(workspace, args, title, log, bar, retry)
    return ApplyResult("destroy", result.done, attempts, result.elapsed)


def _local_state(workspace: Workspace) -> dict | None:
    """The workspace's state document read from its file, when Terraform keeps it there (the default
    local backend, format 4): what ``terraform output`` and ``state pull`` would read, without a
    terraform process. None when the CLI must be asked (another backend, another format, a state
    file a killed run left unreadable)."""
    if (workspace.directory / ".terraform" / "terraform.tfstate").exists():
        return None  # a backend is configured: the state is wherever it says
    document = load_state(workspace.state_file)
    return document if document is not None and document.get("version") == 4 else None


def output(workspace: Workspace) -> Outputs:
    """The root module's outputs as :class:`Outputs` (empty before the first apply): read from the
    local state file (what ``terraform output -json`` reads), else from ``terraform output -json``."""
    if not workspace.state_file.exists() and not (workspace.directory / ".terraform" / "terraform.tfstate").exists():
        return Outputs({}, sensitive=())
    local = _local_state(workspace)
    if local is not None:
        document = local.get("outputs") or {}
    else:
        process = _capture(workspace, "output", "-json", "-no-color")
        if process.returncode != 0:
            raise TerraformError(f"terraform output failed: {process.stderr.strip() or process.stdout.strip()}")
        document = json.loads(process.stdout or "{}")
    return Outputs({k: v.get("value") for k, v in document.items()},
                   sensitive=[k for k, v in document.items() if v.get("sensitive")])


def state_list(workspace: Workspace) -> list[str]:
    """Addresses of every resource in the workspace's state (empty when nothing exists)."""
    if not workspace.state_file.exists():
        return []
    process = _capture(workspace, "state", "list", "-no-color")
    if process.returncode != 0:
        raise TerraformError(f"terraform state list failed: {process.stderr.strip()}")
    return [line for line in process.stdout.splitlines() if line.strip()]


def state_ids(workspace: Workspace) -> set[str]:
    """Every ``id`` and ``arn`` of the managed resources in the workspace's state (empty before the
    first apply): what Terraform knows it created, for telling strays apart (:func:`..aws.sweep.strays`)."""
    if not workspace.state_file.exists():
        return set()
    document = _local_state(workspace)
    if document is None:
        process = _capture(workspace, "state", "pull")
        if process.returncode != 0:
            raise TerraformError(f"terraform state pull failed: {process.stderr.strip()}")
        document = json.loads(process.stdout or "{}")
    ids = set()
    for resource in document.get("resources", []):
        if resource.get("mode") != "managed":
            continue
        for instance in resource.get("instances") or []:
            attributes = instance.get("attributes") or {}
            ids.update(str(attributes[key]) for key in ("id", "arn") if attributes.get(key))
    return ids


def plan_after_apply_is_empty(workspace: Workspace, log: LogCallback | None = None) -> bool:
    """True if a fresh plan finds nothing to change (no drift after an apply)."""
    return not plan(workspace, log=log).has_changes


def inputs_fingerprint(workspace: Workspace) -> str:
    """A digest of everything a plan of the workspace depends on locally: the state file, the variables
    and the configuration (``*.tf``, links followed). Equal digests: a plan made then is a plan of now
    as far as this machine goes (what exists in AWS is the plan's refresh's business)."""
    digest = hashlib.sha256()
    for path in [workspace.state_file, workspace.directory / TFVARS_FILE, *sorted(workspace.directory.glob("*.tf"))]:
        digest.update(path.name.encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"(missing)")
        digest.update(b"\0")
    return digest.hexdigest()


class BackgroundPlan:
    """``terraform plan`` (refreshing, nothing saved) started now in a thread of this process, so that it
    overlaps what the caller does next (02_deploy: its convergence check runs while the platform
    installs). :meth:`result` waits for it and returns its :class:`Plan`, or None when it cannot stand
    for a plan made at that moment: it failed, the state, variables or configuration changed since it
    started (:func:`inputs_fingerprint`), or it started more than ``max_age`` seconds before. The
    caller then plans again in the foreground (which also reports a failure properly)."""

    def __init__(self, workspace: Workspace, title: str = "plan (after apply)", retry: RetryPolicy = RetryPolicy()):
        self.workspace = workspace
        self.started = time.monotonic()
        self.fingerprint = inputs_fingerprint(workspace)
        self._plan: Plan | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(title, retry), name=f"terraform {title}", daemon=True)
        self._thread.start()

    def _run(self, title: str, retry: RetryPolicy) -> None:
        try:
            self._plan = plan(self.workspace, log=None, retry=retry, title=title)
        except BaseException as exc:  # noqa: BLE001 - kept for result(), which falls back to a new plan
            self._error = exc

    def done(self) -> bool:
        """True once the plan has finished (or failed)."""
        return not self._thread.is_alive()

    def result(self, max_age: float = 900.0) -> Plan | None:
        """The plan, once finished, if it still stands for a plan made now (see the class); else None."""
        self._thread.join()
        if self._error is not None or self._plan is None:
            return None
        if time.monotonic() - self.started > max_age or inputs_fingerprint(self.workspace) != self.fingerprint:
            return None
        return self._plan


def _parallelism(workspace: Workspace) -> int:
    # On AWS Terraform's default stays clear of API rate limits; a local stand-in answers at
    # once, so it may allow more (Target.terraform_parallelism).
    from .. import targets

    return targets.get(workspace.target).terraform_parallelism
