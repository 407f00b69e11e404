"""Redaction across processes and the final scrub (records/redact.py, records/scrub.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from eks_hub_runbook.errors import SecretLeakError
from eks_hub_runbook.records import redact, scrub


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_secret_registered_in_another_process_is_found_and_redacted(state):
    sentinel = "child-process-secret-4f1c9a"
    subprocess.run([sys.executable, "-c", f"from eks_hub_runbook.records.redact import register_secret; register_secret({sentinel!r})"],
                   check=True)
    fingerprints = redact.fingerprint_file()
    assert sentinel not in fingerprints.read_text(), "only a fingerprint is stored, never the value"
    assert fingerprints.stat().st_mode & 0o077 == 0
    assert sentinel not in redact.known_secrets()
    assert redact.find_secrets({"out": [f"token={sentinel};"]}) == [sentinel]
    assert redact.redact(f"a {sentinel} b {sentinel}") == f"a {redact.REDACTED} b {redact.REDACTED}"


def test_short_values_are_not_secrets(state):
    redact.register_secret("abc")
    assert redact.redact("abc abc") == "abc abc"


def _notebook(text_output: str, source: str = "print(x)"):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(source, execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text_output)]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    return nb


def test_archive_refuses_a_notebook_with_a_secret(state, tmp_path):
    redact.register_secret("scrub-me-0123456789")
    staged = tmp_path / "staged.ipynb"
    nbformat.write(_notebook("value: scrub-me-0123456789\n"), staged)
    destination = tmp_path / "record" / "nb.ipynb"
    with pytest.raises(SecretLeakError, match=r"cell 1 \(In \[1\]\) output 0") as info:
        scrub.archive_notebook(staged, destination)
    assert "scrub-me-0123456789" not in str(info.value)
    assert not destination.exists()


def test_archive_writes_a_clean_notebook(state, tmp_path):
    staged = tmp_path / "staged.ipynb"
    nbformat.write(_notebook("nothing secret\n"), staged)
    destination = scrub.archive_notebook(staged, tmp_path / "record" / "nb.ipynb")
    assert "".join(json.loads(destination.read_text())["cells"][1]["outputs"][0]["text"]) == "nothing secret\n"


def test_secret_in_source_or_metadata_is_refused(state, tmp_path):
    redact.register_secret("in-the-source-98765")
    nb = _notebook("ok\n", source='token = "in-the-source-98765"')
    assert scrub.notebook_leaks(nb) == ["cell 1 (In [1]) source"]
    nb = _notebook("ok\n")
    nb.metadata["papermill"] = {"parameters": {"x": "in-the-source-98765"}}
    assert scrub.notebook_leaks(nb) == ["notebook metadata"]


def test_text_and_json_scrub(state, tmp_path):
    redact.register_secret("log-secret-abcdef")
    log = tmp_path / "run.log"
    log.write_text("line one\nthe log-secret-abcdef leaked\n")
    with pytest.raises(SecretLeakError, match="line 2"):
        scrub.archive_text(log, tmp_path / "out" / "run.log")
    assert not (tmp_path / "out" / "run.log").exists()
    with pytest.raises(SecretLeakError):
        scrub.write_json({"parameters": {"a": "log-secret-abcdef"}}, tmp_path / "run.json", "run.json")


def test_audit_tree(state, tmp_path):
    redact.register_secret("tree-secret-777777")
    (tmp_path / "t" / "a").mkdir(parents=True)
    (tmp_path / "t" / "a" / "clean.txt").write_text("fine")
    (tmp_path / "t" / "a" / "dirty.log").write_text("x\ntree-secret-777777\n")
    findings = scrub.audit_tree(tmp_path / "t")
    assert len(findings) == 1 and findings[0].endswith("dirty.log: line 2")
