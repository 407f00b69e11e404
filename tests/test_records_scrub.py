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


def test_a_scan_reads_the_secrets_once_and_finds_every_line(state, monkeypatch):
    """A log of thousands of lines is scanned with the secrets and fingerprints read once (it read
    them for every line: most of the HTML report's time), and still names every line with one."""
    shared = "fingerprinted-secret-7d2e11"
    subprocess.run([sys.executable, "-c", f"from eks_hub_runbook.records.redact import register_secret; register_secret({shared!r})"],
                   check=True)
    redact.register_secret("in-process-secret-91ab3c", share=False)
    reads = []
    original = redact._read_fingerprints
    monkeypatch.setattr(redact, "_read_fingerprints", lambda: reads.append(1) or original())
    lines = [f"line {i}: nothing here" for i in range(3000)]
    lines[10] = f"token {shared} end"
    lines[2500] = "x=in-process-secret-91ab3c"
    lines[2999] = f"{shared}in-process-secret-91ab3c"
    assert scrub.text_leaks("\n".join(lines)) == ["line 11", "line 2501", "line 3000"]
    assert len(reads) == 1
    reads.clear()
    assert scrub.text_leaks("\n".join(lines[:10])) == []  # clean: one scan of the whole text
    assert len(reads) == 1
    nb = _notebook("\n".join(lines[:50]))
    reads.clear()
    assert scrub.notebook_leaks(nb) == ["cell 1 (In [1]) output 0"]
    assert len(reads) == 1


def test_a_finder_sees_the_secrets_known_when_it_was_made(state):
    finder = redact.SecretFinder()
    later = "registered-after-the-finder-5c9e"
    redact.register_secret(later)
    assert finder(f"a {later}") == []
    assert redact.SecretFinder()(f"a {later}") == [later] == redact.find_secrets({"k": [f"a {later}"]})
