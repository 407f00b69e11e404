"""The same Terraform stages the runbook runs, run bare with the terraform CLI.

Inputs are made by the runbook's own rendering (``terraform.prepare``: module links, the
sandbox provider override, ``terraform.tfvars.json``, the CLI config and environment) and
copied into a separate folder with fresh state, so both sides apply byte-identical
configurations. Each stage is then one plain ``terraform apply -target=...`` process with
the flags the runner passes (``-json`` so the event stream can be split into provider wait
and the rest; same ``-parallelism`` and ``-lock-timeout``), its stdout captured to a file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eks_hub_runbook.terraform.events import parse_line

from . import tfevents

# The runner's flags (eks_hub_runbook.terraform.commands): sandbox parallelism 20, lock timeout 120 s.
PARALLELISM = "-parallelism=20"
LOCK_TIMEOUT = "-lock-timeout=120s"


@dataclass
class StageRun:
    """One bare terraform process."""

    stage: str
    command: str
    seconds: float
    returncode: int
    started: float
    ended: float
    events_file: Path

    def breakdown(self) -> tfevents.Breakdown:
        return tfevents.breakdown(tfevents.read_events(self.events_file), self.started, self.ended)

    def row(self) -> dict[str, Any]:
        split = self.breakdown()
        return {"stage": self.stage, "command": self.command, "seconds": round(self.seconds, 2),
                "startup": round(split.startup, 2), "plan": round(split.plan, 2),
                "provider in flight": round(split.provider, 2), "core": round(split.core, 2),
                "operations": split.operations}


def copy_inputs(workspace, destination: Path) -> Path:
    """Copy the runner's rendered inputs (not its state) into ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    for source in sorted(workspace.directory.iterdir()):
        if not (source.suffix == ".tf" or source.name.endswith(".tfvars.json")):
            continue
        target = destination / source.name
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copyfile(source, target)
    return destination


def bare_workspace(workspace, destination: Path):
    """A Workspace for the bare copy (same environment and CLI config, its own state)."""
    return replace(workspace, directory=copy_inputs(workspace, destination))


def run(workspace, stage: str, args: list[str], log_dir: Path) -> StageRun:
    """One bare ``terraform -chdir=<dir> <args>``, stdout+stderr captured to a file."""
    log_dir.mkdir(parents=True, exist_ok=True)
    slug = stage.replace(" ", "-")
    events_file = log_dir / f"{args[0]}-{'destroy-' if '-destroy' in args else ''}{slug}.jsonl"
    argv = ["terraform", f"-chdir={workspace.directory}", *args]
    with events_file.open("w") as out:
        started_wall, started = time.time(), time.monotonic()
        process = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=workspace.env(), cwd=workspace.directory)
        seconds = time.monotonic() - started
    command = "destroy" if "-destroy" in args else args[0]
    result = StageRun(stage, command, seconds, process.returncode, started_wall, started_wall + seconds, events_file)
    if process.returncode != 0:
        events = map(parse_line, events_file.read_text(errors="replace").splitlines())
        errors = [e.diagnostic.text() for e in events if e.diagnostic and e.diagnostic.severity == "error"]
        raise RuntimeError(f"bare terraform {' '.join(args[:2])} ({stage}) failed with code {process.returncode}; "
                           f"see {events_file}" + "".join(f"\n  {error[:500]}" for error in errors[:5]))
    return result


def init(workspace, log_dir: Path) -> StageRun:
    return run(workspace, "init", ["init", "-input=false", "-no-color"], log_dir)


def apply_stages(workspace, log_dir: Path) -> list[StageRun]:
    """``terraform init`` then one ``apply -target=...`` per stage of the runbook's staged apply."""
    from eks_hub_runbook import terraform

    runs = [init(workspace, log_dir)]
    for stage in terraform.APPLY_STAGES:
        args = ["apply", "-input=false", "-no-color", "-json", "-auto-approve", LOCK_TIMEOUT, PARALLELISM,
                *[f"-target={t}" for t in stage.targets]]
        runs.append(run(workspace, stage.name, args, log_dir))
    return runs


def destroy_stages(workspace, log_dir: Path) -> list[StageRun]:
    """One ``apply -destroy -target=...`` per stage of the runbook's staged teardown."""
    from eks_hub_runbook import terraform

    runs = []
    for stage in terraform.DESTROY_STAGES:
        args = ["apply", "-destroy", "-input=false", "-no-color", "-json", "-auto-approve", LOCK_TIMEOUT, PARALLELISM,
                *[f"-target={t}" for t in stage.targets]]
        runs.append(run(workspace, stage.name, args, log_dir))
    return runs


def total(runs: list[StageRun]) -> float:
    return sum(r.seconds for r in runs)


def split_totals(runs: list[StageRun]) -> dict[str, float]:
    """Summed breakdown of several runs (seconds): startup, plan, provider, core."""
    sums = {"startup": 0.0, "plan": 0.0, "provider": 0.0, "core": 0.0}
    for r in runs:
        if r.command == "init":
            sums["startup"] += r.seconds
            continue
        split = r.breakdown()
        for key in sums:
            sums[key] += getattr(split, key)
    return sums


def slowest_operations(runs: list[StageRun], count: int = 6) -> list[dict[str, Any]]:
    ops = []
    for r in runs:
        if r.command == "init":
            continue
        for op in tfevents.breakdown(tfevents.read_events(r.events_file), r.started, r.ended, slowest=count).slowest:
            ops.append({"stage": r.stage, **op})
    return sorted(ops, key=lambda o: -o["seconds"])[:count]


def warm_plugin_cache(workspace, scratch: Path) -> float:
    """An untimed ``terraform init`` in a throwaway copy, so neither side pays the first copy
    of the provider from the mirror into the plugin cache. Returns its seconds."""
    copy = bare_workspace(workspace, scratch)
    seconds = init(copy, scratch / "logs").seconds
    shutil.rmtree(scratch, ignore_errors=True)
    return seconds
