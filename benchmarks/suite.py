"""The benchmark run: two deployments of the same root module on one private sandbox.

Phase A, **bare**: the runbook's own rendering makes the Terraform inputs; the terraform
CLI applies them stage by stage with nothing of ours around it. On that deployment the
platform is installed with the library in a plain Python process, and the measurements
that need a running hub are taken: notebook overhead of 00/03 (plain, papermill,
``runbook run``), spawn of user-1 (cold) and user-2 (warm), 20 concurrent users. Then
the cluster is drained with the library and the bare CLI destroys the stages.

Phase B, **runbook**: ``runbook run --all`` (00 to 05) from fresh state, the whole
rehearsal the way a presenter runs it; its ``run.json`` and executed notebooks give the
02 and 05 figures compared with phase A.

Then the sandbox cluster's own API benchmark (``kube_bench``).
"""

from __future__ import annotations

import json
import os
import re
import traceback
from pathlib import Path
from typing import Any, Callable

from . import harness, notebooks, spawn, tfbare, tfevents
from .harness import BIN, Item, LoadSampler, Stopwatch

SPAWN_PROFILE = "gpu-time-slicing"
CROWDS = (20, 50, 100)  # users starting at once, one load check each (item 5)
TITLES = {
    1: "Deploy overhead: 02_deploy (papermill) vs bare terraform stages",
    2: "Destroy overhead: 05_cleanup (papermill) vs bare terraform destroy stages",
    3: "Notebook overhead: papermill / runbook run vs plain Python, same library calls",
    4: "Whole rehearsal: runbook run --all (00 to 05)",
    5: "Spawn: time to ready from the hub API",
    6: "Sandbox cluster: list latency and watch throughput (kube_bench)",
}


def _guard(item: Item, step: Callable[[], None], label: str = "") -> None:
    """Run one measurement; a failure is recorded in the item, the run goes on.

    The machine's load while it ran is kept in ``item.load`` (under ``label`` when given).
    """
    with LoadSampler() as load:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop
            item.error = f"{type(exc).__name__}: {exc}"
            item.notes.append("traceback: " + traceback.format_exc().strip().splitlines()[-1])
    if label:
        item.load[label] = load.summary()
    else:
        item.load = load.summary()


# --- phase A: bare terraform, plain library calls ----------------------------------------------


class Bare:
    """State shared by the steps of phase A."""

    def __init__(self, work: Path):
        from eks_hub_runbook import deploy, params

        self.work = work
        # allow_all lets the load users log in; it is a hub setting, not a Terraform variable.
        self.params = params.resolve(allow_all=True)
        self.workspace = deploy.workspace(self.params, "")  # the runner's rendering
        self.tfvars = (self.workspace.directory / "terraform.tfvars.json").read_text()
        self.bare_ws = tfbare.bare_workspace(self.workspace, work / "bare-terraform")
        self.apply_runs: list[tfbare.StageRun] = []
        self.destroy_runs: list[tfbare.StageRun] = []
        self.platform_s: float | None = None
        self.drain_s: float | None = None
        self.replay: dict[str, float] = {}
        self.warm_s = 0.0

    def apply(self) -> None:
        self.warm_s = tfbare.warm_plugin_cache(self.workspace, self.work / "warm-cache")
        self.apply_runs = tfbare.apply_stages(self.bare_ws, self.work / "bare-logs")
        lines = []
        for run in self.apply_runs[1:]:
            lines += run.events_file.read_text().splitlines()
        self.replay = tfevents.replay_cost(lines)

    def platform(self) -> None:
        from eks_hub_runbook import deploy, records, terraform

        outputs = terraform.output(self.bare_ws)
        with Stopwatch() as sw:
            deploy.install_platform(self.params, outputs)
        self.platform_s = sw.seconds
        # what 02_deploy records for the notebooks after it
        p = self.params
        records.remember(p.deployment, "parameters", p.as_dict())
        records.remember(p.deployment, "cluster_name", outputs["cluster_name"])
        records.remember(p.deployment, "hub_url", deploy.hub_url(p))

    def teardown(self) -> None:
        from eks_hub_runbook import cleanup

        with Stopwatch() as sw:
            cleanup.drain_cluster(self.params)
            cleanup.delete_kubernetes_created(self.params)
        self.drain_s = sw.seconds
        self.destroy_runs = tfbare.destroy_stages(self.bare_ws, self.work / "bare-logs")

    def reset(self) -> None:
        """Leave nothing of phase A that phase B could reuse: hub, records, rendered folder."""
        from eks_hub_runbook import records, terraform
        from eks_hub_sandbox import hub as sandbox_hub, oidc

        sandbox_hub.stop()
        oidc.stop()
        sandbox_hub.delete_database()  # it knows phase A's users
        records.forget(self.params.deployment)
        terraform.remove(self.workspace)


def measure_spawns(item: Item, hub_url: str, kube_api) -> None:
    """Item 5: user-1 cold, user-2 warm (own client, phases from progress), then 20 at once."""
    cold = spawn.spawn(hub_url, "user-1", SPAWN_PROFILE)
    warm = spawn.spawn(hub_url, "user-2", SPAWN_PROFILE)
    stop_s = spawn.stop_all([cold, warm])
    item.details["user-1 and user-2 (profile gpu-time-slicing)"] = [cold.row("cold (new node)"), warm.row("warm (same node)")]
    delays = harness.EMULATOR_DELAYS
    node_delay = float(os.environ.get("RUNBOOK_SANDBOX_NODE_DELAY", delays["RUNBOOK_SANDBOX_NODE_DELAY"]))
    pull_delay = float(os.environ.get("RUNBOOK_SANDBOX_PULL_DELAY", delays["RUNBOOK_SANDBOX_PULL_DELAY"]))
    floor = node_delay + pull_delay
    item.row("user-1 time to ready (cold: new node)", cold.ready_s or None, floor, ours_label="measured",
             bare_label="emulator's node + pull delay", note=cold.error or "ratio: measured / configured waits")
    item.row("user-2 time to ready (warm: same node)", warm.ready_s or None, cold.ready_s or None,
             ours_label="warm", bare_label="cold", note=warm.error or "ratio: warm / cold")
    item.details["stopping user-1 and user-2"] = [{"seconds": round(stop_s, 2)}]

    from eks_hub_runbook import loadtest

    for users in CROWDS:
        result = loadtest.run(hub_url, users, SPAWN_PROFILE, kube_api=kube_api, timeout=900,
                              emulated_delays={"node launch": node_delay, "image pull": pull_delay})
        summary = result.summary()
        label = f"{users} concurrent users"
        item.details[f"{label} (eks_hub_runbook.loadtest)"] = [summary]
        item.details[f"{label}: where the time goes (p50/p95 per phase)"] = result.phase_rows()
        if result.floor is not None:
            item.details[f"{label}: the floor"] = [result.floor.as_dict()]
        errors = "; ".join(result.errors[:3])
        item.row(f"{label}: p95 time to ready vs the floor", summary.get("p95_s"), summary.get("floor_s"),
                 ours_label=f"p95 of {users}", bare_label="floor (waits + CPU per server x N / cores)",
                 note=f"ready {summary.get('ready')}/{users}, errors {summary.get('errors')}, p50 {summary.get('p50_s')} s, "
                      f"max {summary.get('max_s')} s; {summary.get('cpu_per_server_s')} CPU-s and "
                      f"{summary.get('rss_per_server_mb')} MiB per server; GPU nodes {summary.get('gpu_nodes')} "
                      f"(ideal {summary.get('gpu_nodes_ideal')}); orphans {summary.get('orphan_pods')} pods, "
                      f"{summary.get('orphan_processes')} processes" + (f"; {errors}" if errors else ""))
        if users == CROWDS[0]:
            item.row(f"{label}: p50 time to ready vs one warm spawn", summary.get("p50_s"), warm.ready_s or None,
                     ours_label=f"p50 of {users}", bare_label="user-2 alone", note="ratio: contention")


# --- phase B: the rehearsal ----------------------------------------------------------------------


_STAGE_LINE = re.compile(r"^(?P<stage>\S.*?)\s+(?P<command>apply|destroy)\s+(?P<resources>\d+)\s+(?P<attempts>\d+)\s+(?P<seconds>[\d.]+)\s*$")


def stage_table(notebook: Path) -> list[dict[str, Any]]:
    """The staged apply/destroy table a notebook showed (its text/plain DataFrame output)."""
    nb = json.loads(Path(notebook).read_text())
    rows = []
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            if "seconds" not in text or "attempts" not in text:
                continue
            for line in text.splitlines():
                match = _STAGE_LINE.match(line.strip())
                if match:
                    rows.append({"stage": match["stage"].strip(), "command": match["command"],
                                 "resources": int(match["resources"]), "seconds": float(match["seconds"])})
    return rows


CELL_KINDS = (
    ("terraform apply", ("terraform apply",)),
    ("terraform destroy", ("terraform destroy",)),
    ("platform install", ('nb.Progress("platform"',)),
    ("terraform plan", ("deploy.plan(",)),
    ("plan after apply", ("convergence_rows",)),
    ("terraform output", ("deploy.outputs(",)),
    ("drain + sweep", ("Kubernetes-created resources",)),
    ("inventory", ("inventory_rows",)),
    ("leftovers scan", ("leftover_rows",)),
    ("finish", ("cleanup.finish",)),
    ("certificate", ("deploy.certificate(", "certificate_rows")),
    ("imports + form", ("parameter_form",)),
)


def cell_kind(first_line: str, source: str = "") -> str:
    text = f"{first_line}\n{source}"
    for kind, needles in CELL_KINDS:
        if any(n in text for n in needles):
            return kind
    return ""


def notebook_cells(record_dir: Path, name: str) -> list[dict[str, Any]]:
    """Cells of an archived notebook with their duration, first line and kind."""
    nb = json.loads((record_dir / f"{name}.ipynb").read_text())
    cells = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {}).get("papermill", {})
        source = "".join(cell.get("source", "")) if isinstance(cell.get("source"), list) else cell.get("source", "")
        seconds = notebooks._seconds(meta) or 0.0
        first = next((line for line in source.splitlines() if line.strip()), "")
        cells.append({"notebook": name, "index": index, "seconds": round(seconds, 2), "kind": cell_kind(first, source),
                      "first_line": first[:70]})
    return cells


def kind_seconds(cells: list[dict[str, Any]], kind: str) -> float | None:
    found = [c["seconds"] for c in cells if c["kind"] == kind]
    return sum(found) if found else None


def _load_record(record: dict[str, Any]) -> tuple[Path, dict[str, list[dict[str, Any]]]]:
    record_dir = Path(os.environ["RUNBOOK_OUTPUTS_DIR"]) / record["deployment"] / record["run_id"]
    cells = {}
    for entry in record["notebooks"]:
        if (record_dir / f"{entry['name']}.ipynb").exists():
            cells[entry["name"]] = notebook_cells(record_dir, entry["name"])
    return record_dir, cells


def run_rehearsal(work: Path) -> dict[str, Any]:
    """``runbook run --all`` from fresh state; its wall time, run.json and archived notebooks.

    If the run stops before 05_cleanup succeeded, 05 is run on its own (``runbook run 05``)
    so the deployment is torn down and item 2 still has its figures.
    """
    cleanup_parameters = ["-p", "confirm", "True", "-p", "keep_sandbox", "True"]
    log = work / "rehearsal.log"
    code, seconds = harness.run_process([str(BIN / "runbook"), "run", "--all", *cleanup_parameters], log, timeout=1200)
    record = notebooks.latest_run_json()
    if record is None:
        raise RuntimeError(f"runbook run --all left no run.json (exit {code}):\n{harness.tail(log)}")
    record_dir, cells = _load_record(record)
    result = {"exit": code, "wall_s": seconds, "record": record, "dir": record_dir, "cells": cells, "log": log,
              "cleanup_record": record, "cleanup_dir": record_dir}
    cleanup = next((n for n in record["notebooks"] if n["name"] == "05_cleanup"), {})
    if cleanup.get("status") != "succeeded":
        code, _ = harness.run_process([str(BIN / "runbook"), "run", "05_cleanup", *cleanup_parameters],
                                      work / "cleanup.log", timeout=900)
        separate = notebooks.latest_run_json()
        if separate and separate["run_id"] != record["run_id"]:
            separate_dir, separate_cells = _load_record(separate)
            result.update(cleanup_record=separate, cleanup_dir=separate_dir, cleanup_separate=True)
            result["cells"] = {**cells, "05_cleanup": separate_cells.get("05_cleanup", [])}
    return result


# --- the items -------------------------------------------------------------------------------------


def item1(item: Item, bare: Bare, rehearsal: dict[str, Any]) -> None:
    record, cells = rehearsal["record"], rehearsal["cells"].get("02_deploy", [])
    entry = next((n for n in record["notebooks"] if n["name"] == "02_deploy"), {})
    bare_tf = tfbare.total(bare.apply_runs)
    apply_cell = kind_seconds(cells, "terraform apply")
    item.row("Terraform staged apply (init + network, cluster, everything)", apply_cell, bare_tf,
             ours_label="02's apply cell", bare_label="bare terraform CLI",
             note="same tfvars (byte-identical), same flags, fresh state each")
    stages_ours = {r["stage"]: r["seconds"] for r in stage_table(rehearsal["dir"] / "02_deploy.ipynb")}
    for run in bare.apply_runs[1:]:
        if run.stage in stages_ours:
            item.row(f"  stage {run.stage}", stages_ours[run.stage], run.seconds, ours_label="runner (table in 02)",
                     bare_label="bare")
    platform_cell = kind_seconds(cells, "platform install")
    item.row("Platform install (reported separately: not Terraform)", platform_cell, bare.platform_s,
             ours_label="02's platform cell", bare_label="same library call, plain Python")
    extra = sum(filter(None, (kind_seconds(cells, k) for k in ("terraform plan", "plan after apply", "terraform output"))))
    item.row("02's extra Terraform work (plan before, plan after apply, output)", extra, None,
             note="checks the bare path does not do")
    bare_all = bare_tf + (bare.platform_s or 0.0)
    item.row("02_deploy whole notebook vs bare Terraform + plain platform", entry.get("duration_s"), bare_all,
             ours_label="02 (papermill, run.json)", bare_label="bare TF + plain install")
    split = tfbare.split_totals(bare.apply_runs)
    item.details["bare apply: where terraform's time goes (from -json @timestamps)"] = [
        {"part": k, "seconds": round(v, 2), "share": f"{100 * v / bare_tf:.0f}%"} for k, v in split.items()]
    item.details["bare apply stages"] = [r.row() for r in bare.apply_runs]
    item.details["slowest resource operations (bare apply)"] = tfbare.slowest_operations(bare.apply_runs)
    item.details["02_deploy cells"] = sorted(cells, key=lambda c: -c["seconds"])[:8]
    item.details["our event handling, replayed (parse_line + RunProgress.handle)"] = [bare.replay]
    item.details["plugin cache warm-up (untimed, before both sides)"] = [{"seconds": round(bare.warm_s, 2)}]
    if apply_cell is not None:
        ours_cpu_s = bare.replay.get("total_ms", 0.0) / 1000.0
        item.notes.append(
            f"Terraform apply: {split['provider']:.0f} s of the bare {bare_tf:.0f} s have an AWS-provider operation in "
            f"flight (its waiters' fixed polling against the local AWS: see the slowest operations), "
            f"{split['plan']:.0f} s refresh+plan, {split['startup']:.0f} s process/provider start-up (incl. init), "
            f"{split['core']:.0f} s Terraform core. The runbook's apply cell takes {apply_cell - bare_tf:+.1f} s "
            f"({apply_cell / bare_tf:.2f}x); parsing and logging the {bare.replay.get('lines', 0)} event lines costs "
            f"{ours_cpu_s * 1000:.0f} ms of it ({bare.replay.get('per_line_us', 0)} us/line).")


def item2(item: Item, bare: Bare, rehearsal: dict[str, Any]) -> None:
    record, cells = rehearsal["cleanup_record"], rehearsal["cells"].get("05_cleanup", [])
    entry = next((n for n in record["notebooks"] if n["name"] == "05_cleanup"), {})
    if rehearsal.get("cleanup_separate"):
        item.notes.append("the rehearsal stopped before 05_cleanup (see item 4): 05 was run on its own "
                          "(`runbook run 05_cleanup`) on the same deployment")
    bare_tf = tfbare.total(bare.destroy_runs)
    destroy_cell = kind_seconds(cells, "terraform destroy")
    item.row("Terraform staged destroy (add-ons, cluster, everything)", destroy_cell, bare_tf,
             ours_label="05's destroy cell", bare_label="bare terraform CLI",
             note="05's cell also sweeps Kubernetes-created AWS resources once more before the network stage")
    stages_ours = {r["stage"]: r["seconds"] for r in stage_table(rehearsal["cleanup_dir"] / "05_cleanup.ipynb")}
    for run in bare.destroy_runs:
        if run.stage in stages_ours:
            item.row(f"  stage {run.stage}", stages_ours[run.stage], run.seconds, ours_label="runner (table in 05)",
                     bare_label="bare")
    item.row("Drain + sweep of what Kubernetes created", kind_seconds(cells, "drain + sweep"), bare.drain_s,
             ours_label="05's cell", bare_label="same library calls, plain Python",
             note="drain polls for Karpenter nodes every 5 s")
    bare_all = bare_tf + (bare.drain_s or 0.0)
    item.row("05_cleanup whole notebook vs bare drain + destroy", entry.get("duration_s"), bare_all,
             ours_label="05 (papermill, run.json)", bare_label="plain drain + bare destroy",
             note="05 also: inventory and leftovers scans, records, certificate")
    split = tfbare.split_totals(bare.destroy_runs)
    item.details["bare destroy: where terraform's time goes"] = [
        {"part": k, "seconds": round(v, 2), "share": f"{100 * v / bare_tf:.0f}%"} for k, v in split.items()]
    item.details["bare destroy stages"] = [r.row() for r in bare.destroy_runs]
    item.details["slowest resource operations (bare destroy)"] = tfbare.slowest_operations(bare.destroy_runs)
    item.details["05_cleanup cells"] = sorted(cells, key=lambda c: -c["seconds"])[:8]
    item.notes.append(
        f"Terraform destroy: {split['provider']:.0f} s of the bare {bare_tf:.0f} s have a provider operation in flight "
        f"(the EKS cluster deletion waiter dominates), {split['plan']:.0f} s refresh+plan, "
        f"{split['startup']:.0f} s start-up, {split['core']:.0f} s core.")


def item3(item: Item, results: list[dict[str, Any]]) -> None:
    for result in results:
        name = result["notebook"]
        plain, pm = result["plain"], result["papermill"]
        item.row(f"{name}: papermill vs plain Python", pm["seconds"], plain["seconds"], ours_label="papermill CLI",
                 bare_label="plain python", note="" if pm["ok"] and plain["ok"] else f"ok: papermill {pm['ok']}, plain {plain['ok']}")
        if "runbook" in result:
            rb = result["runbook"]
            item.row(f"{name}: runbook run vs plain Python", rb["seconds"], plain["seconds"], ours_label="runbook run",
                     bare_label="plain python", note="" if rb["ok"] else "runbook run failed")
        split = pm.get("split") or {}
        if split:
            item.row(f"{name}: cells in the kernel vs the same cells plain", split.get("cells"), plain["cells_s"],
                     ours_label="kernel", bare_label="plain")
            item.details[f"{name}: papermill's time"] = [{"part": k, "seconds": round(v, 2)} for k, v in split.items()]
        kernel = pm.get("cells") or []
        rows = [{"cell": t["index"], "plain (s)": round(t["seconds"], 2),
                 "kernel (s)": round(kernel[i], 2) if len(kernel) == len(plain["cells"]) else "",
                 "first_line": t["first_line"][:60]} for i, t in enumerate(plain["cells"])]
        item.details[f"{name}: cells, plain vs kernel (slowest first)"] = sorted(
            rows, key=lambda r: -max(r["plain (s)"], r["kernel (s)"] or 0))[:6]


def item4(item: Item, rehearsal: dict[str, Any]) -> None:
    record = rehearsal["record"]
    in_notebooks = sum(n.get("duration_s") or 0.0 for n in record["notebooks"])
    item.row("runbook run --all: wall time", rehearsal["wall_s"], in_notebooks, ours_label="wall (process)",
             bare_label="sum of notebooks (papermill start to end)",
             note=f"status {record.get('status')}; the difference is the runner: start-up, records, scrub, HTML report")
    for entry in record["notebooks"]:
        item.row(f"  {entry['name']}", entry.get("duration_s"), None, note=entry.get("status", ""))
    all_cells = [c for cells in rehearsal["cells"].values() for c in cells]
    item.details["slowest cells of the rehearsal"] = sorted(all_cells, key=lambda c: -c["seconds"])[:10]
    if record.get("failure"):
        item.notes.append(f"the rehearsal did not succeed: {record['failure']}")


def _number(text: str) -> float | None:
    match = re.search(r"[-+]?\d+(?:\.\d+)?", text)
    return float(match.group()) if match else None


def item6(item: Item) -> None:
    """The cluster emulator's own benchmark (``benchmarks/kube_bench.py``, another engineer's), as ratios."""
    try:
        from . import kube_bench
    except ImportError:
        item.error = "benchmarks/kube_bench.py is not in this checkout"
        return
    rows = kube_bench.benchmark()
    item.details["kube_bench (private emulator, 1,000 pending pods, 2,000 ConfigMap events)"] = rows
    found = {r["measure"]: r["result"] for r in rows}

    def pick(prefix: str) -> float | None:
        return next((_number(v) for k, v in found.items() if k.startswith(prefix)), None)

    listed, table, kubectl, one = (pick(p) for p in ("list 1000 pods, JSON", "list 1000 pods, Table", "kubectl get pods",
                                                     "list with label"))
    item.row("list 1,000 pods (JSON) vs 1 of 1,000 by selector", listed, one, ours_label="1,000 pods",
             bare_label="1 pod", unit="ms", note="median of 10; the emulator filters after reading the namespace")
    item.row("list 1,000 pods as Table (kubectl's format) vs JSON", table, listed, ours_label="Table", bare_label="JSON",
             unit="ms")
    item.row("kubectl get pods (process) vs the API list it makes", kubectl, table, ours_label="kubectl",
             bare_label="API, Table", unit="ms", note="the difference is kubectl's own start-up and rendering")
    live, replay = pick("watch, live"), pick("watch, replay")
    item.row("watch: live events/s (4 writers) vs replay from a resourceVersion", live, replay,
             ours_label="live", bare_label="replay", unit="events/s",
             note="live is bounded by the writers' create rate (validation + store + fan-out)")
    for key in ("create", "idle CPU", "emulator memory"):
        value = next((f"{k}: {v}" for k, v in found.items() if k.startswith(key)), "")
        if value:
            item.notes.append(value)


# --- the whole run ---------------------------------------------------------------------------------


def run(selected: set[int], work: Path, progress: Callable[[str], None] = print) -> list[Item]:
    """Run the selected items on a private sandbox; returns them (with errors recorded, never raised)."""
    items = {n: Item(n, TITLES[n]) for n in sorted(selected)}
    need_phases = selected & {1, 2, 3, 4, 5}
    if need_phases:
        with harness.running_sandbox():
            bare = None
            if selected & {1, 2, 3, 5}:
                progress("phase A: bare terraform apply")
                bare = Bare(work)
                phase = Item(0, "phase A")
                _guard(phase, bare.apply, "bare terraform apply")
                if phase.error:
                    raise RuntimeError(f"bare apply failed: {phase.error}")
                progress("phase A: platform (plain Python)")
                _guard(phase, bare.platform, "platform install")
                if 3 in selected:
                    progress("item 3: notebook overhead (00, 03)")
                    results: list[dict[str, Any]] = []
                    _guard(items[3], lambda: results.extend(
                        notebooks.measure(n, {}, work / "notebooks") for n in ("00_prerequisites", "03_verify")))
                    item3(items[3], results)
                if 5 in selected:
                    progress("item 5: spawns")
                    from eks_hub_runbook import deploy, kube

                    _guard(items[5], lambda: measure_spawns(items[5], deploy.hub_url(bare.params), kube.client_for(bare.params)))
                progress("phase A: drain + bare terraform destroy")
                _guard(phase, bare.teardown, "drain + bare terraform destroy")
                bare.reset()
                if phase.error:
                    raise RuntimeError(f"phase A failed: {phase.error}")
            if selected & {1, 2, 4}:
                progress("phase B: runbook run --all")
                rehearsal: dict[str, Any] = {}
                rehearsal_item = items.get(4) or Item(4, TITLES[4])
                _guard(rehearsal_item, lambda: rehearsal.update(run_rehearsal(work)))
                if rehearsal:
                    if 4 in items:
                        item4(items[4], rehearsal)
                    for number, fill in ((1, item1), (2, item2)):
                        if number in items and bare is not None:
                            try:
                                fill(items[number], bare, rehearsal)
                            except Exception as exc:  # noqa: BLE001
                                items[number].error = f"{type(exc).__name__}: {exc}"
                            phase_a = "bare terraform apply" if number == 1 else "drain + bare terraform destroy"
                            items[number].load = {"bare (phase A)": phase.load.get(phase_a, {}) if bare else {},
                                                  "runbook run --all (phase B)": rehearsal_item.load}
                    if bare is not None and 1 in items:
                        items[1].notes.append(f"tfvars identical on both sides: {identical_tfvars(bare, rehearsal)}")
                else:
                    for number in selected & {1, 2}:
                        items[number].error = items[number].error or f"rehearsal failed: {rehearsal_item.error}"
    if 6 in selected:
        progress("item 6: kube_bench")
        _guard(items[6], lambda: item6(items[6]))
    return list(items.values())


def identical_tfvars(bare: Bare, rehearsal: dict[str, Any]) -> str:
    """Compare the tfvars phase A applied with the variables table 02 showed (rendered from its tfvars)."""
    expected = {k: ", ".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in json.loads(bare.tfvars).items()}
    nb = json.loads((Path(rehearsal["dir"]) / "02_deploy.ipynb").read_text())
    shown: dict[str, str] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            if "jupyter_hub_auth_mechanism" not in text or shown:
                continue  # the first such table is the variables table (later ones are outputs)
            for line in text.splitlines()[2:]:
                key, _, value = line.strip().partition(" ")
                if key:
                    shown[key] = value.strip()
    if not shown:
        return "unknown (02's variables table not found)"
    differ = sorted(k for k in set(expected) | set(shown) if expected.get(k) != shown.get(k))
    return "yes" if not differ else "differs in " + ", ".join(f"{k} ({expected.get(k)!r} vs {shown.get(k)!r})" for k in differ)


def quick_run(work: Path) -> list[Item]:
    """A few-second run for the smoke test: the formatting and parsing paths on recorded data,
    plus the plain-Python runner on a tiny notebook (no sandbox, no kernel)."""
    fixtures = harness.REPO_ROOT / "tests" / "fixtures" / "benchmarks"
    item1_ = Item(1, "Deploy overhead (recorded terraform -json stream)")
    stream = fixtures / "apply-network.jsonl"
    events = tfevents.read_events(stream)
    first = tfevents.parse_timestamp(events[0]["@timestamp"])
    last = tfevents.parse_timestamp(events[-1]["@timestamp"])
    split = tfevents.breakdown(events, first - 1.0, last + 0.5)
    item1_.row("recorded stage network", split.wall, split.provider, ours_label="wall", bare_label="provider in flight")
    item1_.details["breakdown"] = [split.as_dict()]
    item1_.details["replay"] = [tfevents.replay_cost(stream.read_text().splitlines(), repeat=1)]
    item3_ = Item(3, "Notebook overhead (tiny notebook, plain side only)")
    cells = notebooks.code_cells(fixtures / "tiny.ipynb", {"n": 3})
    timings = work / "tiny-timings.json"
    code = notebooks.run_cells(cells, timings)
    measured = json.loads(timings.read_text())
    item3_.row("tiny notebook plain", sum(t["seconds"] for t in measured), None, note=f"exit {code}")
    item4_ = Item(4, "Whole rehearsal (recorded notebook)")
    item4_.details["stages"] = stage_table(fixtures / "02_deploy-stages.ipynb")
    return [item1_, item3_, item4_]
