"""Golden notebooks: the executed runbooks of a sandbox run, kept under ``tests/golden/``
and compared with ``pytest --nbval`` on every test run.

``regenerate`` (``runbook golden`` / ``make golden``) runs every runbook on a fresh,
private sandbox for each variant (dummy and cognito login), exactly as ``runbook run``
does, and stores the executed notebooks as ``tests/golden/<variant>/<notebook>.ipynb``.

How nbval uses them: it *re-executes* each golden notebook cell by cell in a new
kernel and compares the fresh outputs with the stored ones. A papermill output
notebook carries its ``injected-parameters`` cell, so the re-execution runs with the
same parameters as the golden run; notebooks of one variant share a deployment name
and run in order (00 to 05), so later notebooks find what earlier ones recorded.
Outputs that legitimately change between runs (ARNs, ids, dates, durations, ports,
temporary paths) are rewritten by ``tests/golden/nbval_sanitize.cfg`` on both sides;
cells whose output cannot be stable carry ``nbval-ignore-output`` (scrapbook glue
cells) or ``nbval-skip`` (widgets) - in the runbooks themselves, and added here as a
safety net for any cell that outputs a scrap or a widget without the tag.

The stored notebooks are normalised so they diff well in review: no timing metadata, a
fixed id for the injected-parameters cell, and the sanitizer's value rules (not its
whitespace rule) already applied to the stored outputs - nbval applies them again to
both sides, which changes nothing on the stored side, so a regeneration only shows
real changes (no new node names, ports or dates).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .. import environment
from ..errors import RunbookError
from ..paths import REPO_ROOT, RUNBOOKS_DIR
from .console import Console

GOLDEN_DIR = REPO_ROOT / "tests" / "golden"
SANITIZE_FILE = GOLDEN_DIR / "nbval_sanitize.cfg"
# One sandbox run per login method; deployment names are fixed so re-execution matches
# (and avoid "cognito"/"aws": they prefix the Cognito hosted-UI domain, which forbids them).
VARIANTS: dict[str, dict[str, Any]] = {
    "dummy": {"deployment": "golden-type1", "auth": "dummy"},
    "cognito": {"deployment": "golden-type2", "auth": "cognito"},  # the domain: the sandbox default
}
# Parameters given to every variant when a notebook declares them (04 shows its MIG section and a
# load check of 4 users too; the hub's admin creates the load users).
COMMON: dict[str, Any] = {"confirm": True, "keep_sandbox": False, "mig": True, "admin_users": "hub-admin",
                          "load_users": 4}

IGNORE_OUTPUT, SKIP = "nbval-ignore-output", "nbval-skip"
NBVAL_TAGS = (IGNORE_OUTPUT, SKIP, "nbval-check-output", "nbval-raises-exception", "raises-exception")
_SCRAP_MIME = "application/scrapbook.scrap."
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def variant_parameters(variant: str, notebooks: list[tuple[str, Path]]) -> dict[str, Any]:
    """The parameters of a golden run: the variant's, plus the common ones some notebook declares."""
    from .runner import declared_parameters

    if variant not in VARIANTS:
        raise RunbookError(f"unknown golden variant {variant!r}: use {', '.join(VARIANTS)}")
    declared: set[str] = set()
    for _, path in notebooks:
        declared.update(declared_parameters(path))
    return {**{k: v for k, v in COMMON.items() if k in declared}, **VARIANTS[variant]}


def sanitizer_rules(path: Path = SANITIZE_FILE) -> list[tuple[re.Pattern, str]]:
    """The value rules of the nbval sanitizer file (the whitespace rule excluded), in order."""
    if not path.is_file():
        return []
    pairs = re.findall(r"^regex: (.*)$\n^replace: (.*)$", path.read_text(), flags=re.MULTILINE)
    return [(re.compile(regex), replace) for regex, replace in pairs if regex.strip() != r"[ \t]+"]


def _sanitize(value: Any, rules: list[tuple[re.Pattern, str]]) -> Any:
    if isinstance(value, list):
        return [_sanitize(v, rules) for v in value]
    if isinstance(value, str):
        for pattern, replace in rules:
            value = pattern.sub(replace, value)
    return value


def normalise(nb: dict[str, Any], rules: list[tuple[re.Pattern, str]] | None = None) -> list[str]:
    """Strip run-specific metadata and make sure unstable cells are tagged for nbval.

    Returns a note per cell that had to be tagged here (the runbook should carry the tag).
    """
    notes = []
    papermill = nb.get("metadata", {}).get("papermill", {})
    nb["metadata"]["papermill"] = {k: papermill[k] for k in ("parameters", "version") if k in papermill}
    if "input_path" in papermill:
        nb["metadata"]["papermill"]["input_path"] = os.path.relpath(papermill["input_path"], REPO_ROOT) \
            if os.path.isabs(papermill["input_path"]) else papermill["input_path"]
    rules = sanitizer_rules() if rules is None else rules
    for index, cell in enumerate(nb.get("cells", [])):
        meta = cell.setdefault("metadata", {})
        meta.pop("papermill", None)
        meta.pop("execution", None)
        if cell.get("cell_type") != "code":
            continue
        tags = meta.setdefault("tags", [])
        if "injected-parameters" in tags:
            cell["id"] = "injected-parameters"
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = _sanitize(output["text"], rules)
            for mime in ("text/plain", "text/html", "text/markdown"):
                if mime in output.get("data", {}):
                    output["data"][mime] = _sanitize(output["data"][mime], rules)
        mimes = {m for o in cell.get("outputs", []) for m in o.get("data", {})}
        if any(m == _WIDGET_MIME for m in mimes) and SKIP not in tags:
            tags.append(SKIP)
            notes.append(f"cell {index}: widget output, tagged {SKIP}")
        elif any(m.startswith(_SCRAP_MIME) for m in mimes) and not set(tags) & {IGNORE_OUTPUT, SKIP}:
            tags.append(IGNORE_OUTPUT)
            notes.append(f"cell {index}: scrapbook scrap, tagged {IGNORE_OUTPUT}")
        if not tags:
            meta.pop("tags")
    return notes


def regenerate(
    variants: list[str] | None = None,
    notebook_dir: Path = RUNBOOKS_DIR,
    golden_dir: Path = GOLDEN_DIR,
    console: Console | None = None,
) -> list[Path]:
    """Run every runbook on a fresh sandbox per variant and store the executed notebooks."""
    from . import runner

    notebooks = runner.discover(None, all_notebooks=True, notebook_dir=notebook_dir)
    console = console or Console()
    written: list[Path] = []
    for variant in variants or list(VARIANTS):
        parameters = variant_parameters(variant, notebooks)
        with tempfile.TemporaryDirectory(prefix=f"golden-{variant}-") as tmp, environment.isolated(Path(tmp)):
            console.rule(f"golden {variant}: {', '.join(f'{k}={v}' for k, v in parameters.items())}")
            try:
                run = runner.run(notebooks, parameters, console=console, command=f"runbook golden --variant {variant}")
            except runner.RunFailed as exc:
                raise RunbookError(f"golden run '{variant}' failed, nothing was replaced:\n{exc}") from None
            target = golden_dir / variant
            staged = Path(tmp) / "golden"
            staged.mkdir()
            for entry in run.notebooks:
                nb = json.loads((run.dir / entry.output).read_text())
                for note in normalise(nb):
                    console.write(f"{entry.name} {note} (add the tag to runbooks/{entry.name}.ipynb)")
                (staged / entry.output).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(staged, target)
            written.extend(sorted(target.glob("*.ipynb")))
    return written
