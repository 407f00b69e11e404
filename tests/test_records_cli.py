"""The `runbook run` and `runbook records` commands, and the HTML report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eks_hub_runbook.cli import _split_run_arguments, app
from eks_hub_runbook.records import archive, report

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"


@pytest.fixture
def records_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RUNBOOK_OUTPUTS_DIR", str(tmp_path / "outputs"))
    return tmp_path


def test_notebooks_and_parameters_are_split():
    assert _split_run_arguments(["00", "-p", "auth", "cognito", "02", "-r", "account", "007"]) == (
        ["00", "02"], ["-p", "auth", "cognito", "-r", "account", "007"])


def test_run_list_show_report(records_env):
    cli = CliRunner()
    result = cli.invoke(app, ["run", str(FIXTURES / "ok.ipynb"), str(FIXTURES / "raises.ipynb"), "-p", "deployment", "fixture-cli",
                              "-p", "greeting", "hi there"])
    assert result.exit_code == 1, result.output
    assert "hi there from fixture-cli" in result.output
    assert "error: run fixture-cli/" in result.output and "failed at raises, cell 4" in result.output
    run = archive.find_run("latest")
    assert run.data["command"] == (f"runbook run {FIXTURES / 'ok.ipynb'} {FIXTURES / 'raises.ipynb'}"
                                   " -p deployment fixture-cli -p greeting 'hi there'")
    assert (run.dir / "report" / "index.html").is_file(), "a failed run still gets its report"

    result = cli.invoke(app, ["records", "list"])
    assert result.exit_code == 0 and f"fixture-cli/{run.run_id}" in result.output and "failed" in result.output
    assert "greeting=hi there" in result.output

    result = cli.invoke(app, ["records", "show", run.run_id[:15]])
    assert result.exit_code == 0, result.output
    assert "raises    failed" in result.output and "ok        succeeded" in result.output
    assert "failed in raises, cell 4 (In [4])" in result.output and "RuntimeError: boom" in result.output
    assert f"runbook run --resume --run {run.run_id}" in result.output

    result = cli.invoke(app, ["records", "show", run.run_id, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json.loads((run.dir / "run.json").read_text()), "run.json as is"

    result = cli.invoke(app, ["records", "report", "latest"])
    assert result.exit_code == 0, result.output
    index = (run.dir / "report" / "index.html").read_text()
    assert 'href="raises.html#papermill-error-cell"' in index and "boom: the fixture fails here" in index
    assert 'href="ok.html"' in index and "greeting" in index and "papermill" in index
    page = (run.dir / "report" / "raises.html").read_text()
    assert 'id="papermill-error-cell"' in page and "before the failure" in page
    assert (records_env / "outputs" / "index.html").read_text().count(f">fixture-cli/{run.run_id}</a>") == 1


def test_cli_errors_are_one_clear_line(records_env):
    cli = CliRunner()
    result = cli.invoke(app, ["run", str(FIXTURES / "ok.ipynb"), "-p", "oauth_client_secret", "x"])
    assert result.exit_code == 2 and "never passed as notebook parameters" in result.output
    result = cli.invoke(app, ["run", "--resume"])
    assert result.exit_code == 2 and "nothing to resume" in result.output
    result = cli.invoke(app, ["records", "show", "nope"])
    assert result.exit_code == 2 and "no run 'nope'" in result.output


def test_report_of_a_run_with_a_resumed_notebook(records_env):
    from eks_hub_runbook.records import runner
    from eks_hub_runbook.records.console import Console
    import io

    flag = records_env / "flag"
    nbs = runner.discover([str(FIXTURES / "fails_once.ipynb")])
    with pytest.raises(runner.RunFailed):
        runner.run(nbs, {"flag_file": str(flag)}, console=Console(stream=io.StringIO()))
    run = runner.run(None, {}, resume=True, console=Console(stream=io.StringIO()))
    index = report.write_report(run).read_text()
    assert "fails_once.attempt-1.html" in index
    assert (run.dir / "report" / "fails_once.attempt-1.html").is_file()
