"""`runbook run` on tiny fixture notebooks: records, failures, resume, kills (records/runner.py)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eks_hub_runbook.errors import ParameterError, RunbookError
from eks_hub_runbook.records import archive, inputs, runner
from eks_hub_runbook.records.console import Console
from eks_hub_runbook.records.model import RunRecord, Status

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def records_env(tmp_path, monkeypatch):
    """Private outputs/ and state folder for one test."""
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RUNBOOK_OUTPUTS_DIR", str(tmp_path / "outputs"))
    monkeypatch.delenv("RUNBOOK_OAUTH_CLIENT_SECRET", raising=False)
    return tmp_path


def notebooks(*names):
    return runner.discover([str(FIXTURES / f"{n}.ipynb") for n in names])


def quiet():
    return Console(stream=io.StringIO())


def written(run) -> dict:
    """The run's run.json, checked to read back through the typed record unchanged (keys in order)."""
    text = (run.dir / "run.json").read_text()
    data = json.loads(text)
    assert json.dumps(RunRecord.from_dict(data).to_dict(), indent=2) + "\n" == text
    return data


def test_discover_by_name_number_and_all(tmp_path):
    for name in ("00_prerequisites", "01_certificate", "02_deploy"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    assert [n for n, _ in runner.discover(["02", "deploy", "00_prerequisites"], notebook_dir=tmp_path)] == [
        "02_deploy", "02_deploy", "00_prerequisites"]
    assert [n for n, _ in runner.discover(None, True, notebook_dir=tmp_path)] == ["00_prerequisites", "01_certificate", "02_deploy"]
    with pytest.raises(RunbookError, match="is not a notebook; notebooks in"):
        runner.discover(["07"], notebook_dir=tmp_path)
    with pytest.raises(RunbookError, match="or pass --all"):
        runner.discover([], notebook_dir=tmp_path)


def test_run_archives_notebooks_and_run_json(records_env):
    parameters = inputs.parse_cli_parameters(["-p", "deployment", "fixture-a", "-p", "count", "7", "-r", "account", "007",
                                              "-p", "flag", "True"])
    console = quiet()
    run = runner.run(notebooks("ok", "parameters"), parameters, console=console, command="runbook run ok parameters")

    assert run.dir == records_env / "outputs" / "fixture-a" / run.run_id
    data = written(run)
    assert data["status"] == "succeeded" and data["failure"] is None
    assert data["deployment"] == "fixture-a" and data["target"] == "sandbox"
    assert data["parameters"] == {"deployment": "fixture-a", "count": 7, "account": "007", "flag": True}
    assert data["duration_s"] > 0 and data["started_at"] < data["ended_at"]
    assert [(n["name"], n["status"], n["attempt"]) for n in data["notebooks"]] == [("ok", "succeeded", 1), ("parameters", "succeeded", 1)]
    ok, params_nb = data["notebooks"]
    assert ok["parameters"] == {"deployment": "fixture-a"}, "only declared parameters are injected"
    assert ok["scraps"] == {"greeting": "hello", "numbers": {"one": 1, "two": 2}}
    assert params_nb["scraps"]["types"] == {"count": "int", "ratio": "float", "flag": "bool", "name": "str", "account": "str"}
    assert params_nb["scraps"]["values"]["account"] == "007"
    cells = ok["cells"]
    assert [c["tags"] for c in cells[:2]] == [["parameters"], ["injected-parameters"]]
    assert all(c["status"] == "completed" and c["duration_s"] is not None for c in cells)
    assert data["versions"]["packages"]["papermill"] == "2.7.0"
    assert data["versions"]["terraform"] and "python" in data["versions"]
    assert len(data["git"]["commit"]) == 40
    assert data["attempts"][0]["status"] == "succeeded"
    for name in ("ok.ipynb", "parameters.ipynb", "run.log"):
        assert (run.dir / name).is_file()
    # live output: cell markers and the cells' own output, also in run.log
    shown = console.stream.getvalue()
    assert "[ok 3/6] print(f\"{greeting} from {deployment}\")" in shown and "hello from fixture-a" in shown
    assert "**shown as markdown**" in shown and "'step 1 done'" in shown, "markdown and in-place updates are followed"
    assert "hello from fixture-a" in (run.dir / "run.log").read_text()
    # the notebook's own scraps are readable by later notebooks of the deployment
    from eks_hub_runbook import records
    assert records.recall("fixture-a", "greeting") == "hello"


def test_failing_notebook_records_the_failing_cell(records_env):
    console = quiet()
    with pytest.raises(runner.RunFailed) as info:
        runner.run(notebooks("raises", "ok"), {}, console=console)
    run = info.value.run
    assert "raises, cell 3 (In [3])" in str(info.value) and "runbook run --resume" in str(info.value)
    data = written(run)
    assert data["status"] == "failed"
    assert data["failure"] == {"notebook": "raises", "cell_index": 3, "execution_count": 3, "ename": "RuntimeError",
                               "evalue": "boom: the fixture fails here",
                               "first_line": 'raise RuntimeError("boom: the fixture fails here")'}
    raises, ok = data["notebooks"]
    assert raises["status"] == "failed" and ok["status"] == "pending" and ok["attempt"] == 0
    assert [c["status"] for c in raises["cells"]] == ["completed", "completed", "failed", "pending"]
    assert (run.dir / "raises.ipynb").is_file() and not (run.dir / "ok.ipynb").exists()
    assert "RuntimeError: boom: the fixture fails here" in console.stream.getvalue()


def test_unknown_or_invalid_parameters_stop_before_anything_runs(records_env):
    with pytest.raises(ParameterError, match="'colour': is not a parameter of any notebook of this run \(ok\)"):
        runner.run(notebooks("ok"), {"colour": "red"}, console=quiet())
    with pytest.raises(ParameterError, match="'deployment'"):
        runner.run(notebooks("ok"), {"deployment": "Not_A_Name"}, console=quiet())
    with pytest.raises(ParameterError, match="never passed as notebook parameters"):
        runner.run(notebooks("ok"), {"oauth_client_secret": "x"}, console=quiet())
    assert not (records_env / "outputs").exists()


def test_resume_continues_from_the_failed_notebook(records_env):
    flag = records_env / "flag"
    parameters = {"deployment": "fixture-resume", "flag_file": str(flag)}
    with pytest.raises(runner.RunFailed) as info:
        runner.run(notebooks("ok", "fails_once", "parameters"), parameters, console=quiet())
    first = info.value.run
    ok_record = (first.dir / "ok.ipynb").read_bytes()

    resumed = runner.run(None, {"deployment": "fixture-resume"}, resume=True, console=quiet())
    assert resumed.run_id == first.run_id
    data = written(resumed)
    assert data["status"] == "succeeded"
    assert [(n["name"], n["status"], n["attempt"]) for n in data["notebooks"]] == [
        ("ok", "succeeded", 1), ("fails_once", "succeeded", 2), ("parameters", "succeeded", 1)]
    assert (resumed.dir / "ok.ipynb").read_bytes() == ok_record, "earlier notebooks' records are reused as they were"
    previous = data["notebooks"][1]["previous_attempts"]
    assert previous[0]["status"] == "failed" and previous[0]["failure"]["ename"] == "RuntimeError"
    assert (resumed.dir / previous[0]["output"]).is_file()
    assert [a["resumed_from"] for a in data["attempts"]] == [None, "fails_once"]
    assert data["notebooks"][1]["parameters"] == parameters, "the run's recorded parameters are reused"

    with pytest.raises(RunbookError, match="nothing to resume"):
        runner.run(None, {"deployment": "fixture-resume"}, resume=True, console=quiet())


def test_resume_refuses_changed_parameters(records_env):
    with pytest.raises(runner.RunFailed):
        runner.run(notebooks("raises"), {"deployment": "fixture-changed"}, console=quiet())
    with pytest.raises(ParameterError, match="differs from the run being resumed"):
        runner.run(None, {"deployment": "fixture-changed", "target": "aws"}, resume=True, console=quiet())


def _cli(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "eks_hub_runbook.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        if process.poll() is not None:
            raise AssertionError(f"runner ended early:\n{process.stdout.read()}")
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"{path} never appeared")


def _pid_gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_kernel_killed_mid_notebook_is_recorded_and_resume_completes(records_env):
    markers = records_env / "markers"
    markers.mkdir()
    process = _cli("run", str(FIXTURES / "kill_me.ipynb"), str(FIXTURES / "ok.ipynb"), "-p", "deployment", "fixture-kill",
                   "-p", "marker_dir", str(markers), "--no-report", env=dict(os.environ))
    kernel = _wait_for(markers / "kernel.pid", process)
    child = int((markers / "child.pid").read_text())
    os.kill(kernel, signal.SIGKILL)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 1, out
    assert "killed at kill_me, cell 4 (In [4])" in out and "the kernel died" in out
    assert "stopped 1 process(es) it had started" in out
    assert _pid_gone(child), "what the dead kernel started is stopped too"

    run = archive.find_run("latest")
    assert run.status == Status.KILLED
    entry = run.entry("kill_me")
    assert entry.failure.cell_index == 4 and entry.failure.ename == "DeadKernelError"
    assert entry.failure.first_line == "if attempt == 1:"
    assert [c.status for c in entry.cells] == ["completed", "completed", "completed", "failed", "pending"]
    assert list(written(run)["notebooks"][0]["failure"]) == ["cell_index", "execution_count", "ename", "evalue", "first_line",
                                                             "reason"]
    archived = json.loads((run.dir / "kill_me.ipynb").read_text())
    assert archived["cells"][4]["outputs"][-1]["ename"] == "DeadKernelError"
    assert run.entry("ok").status == Status.PENDING

    process = _cli("run", "--resume", "--run", run.run_id, "--no-report", env=dict(os.environ))
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 0, out
    run = archive.find_run(run.run_id)
    assert run.status == Status.SUCCEEDED
    assert [(n.name, n.attempt) for n in run.notebooks] == [("kill_me", 2), ("ok", 1)]
    assert run.entry("kill_me").previous_attempts[0].status == Status.KILLED
    assert written(run)["notebooks"][0]["previous_attempts"][0]["output"] == "attempts/1/kill_me.ipynb"


def test_sigterm_stops_the_run_records_where_and_leaves_no_kernel(records_env):
    markers = records_env / "markers"
    markers.mkdir()
    process = _cli("run", str(FIXTURES / "kill_me.ipynb"), "-p", "deployment", "fixture-term", "-p", "marker_dir", str(markers),
                   "--no-report", env=dict(os.environ))
    kernel = _wait_for(markers / "kernel.pid", process)
    child = int((markers / "child.pid").read_text())
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130, out
    run = archive.find_run("latest")
    assert run.status == Status.INTERRUPTED
    assert run.record.failure.notebook == "kill_me" and run.record.failure.cell_index == 4
    assert written(run)["failure"]["notebook"] == "kill_me"
    assert _pid_gone(kernel), "the kernel must not outlive the runner"
    assert _pid_gone(child), "nor what it started"


def test_abandoned_run_is_detected_and_resumable(records_env):
    with pytest.raises(runner.RunFailed):
        runner.run(notebooks("raises"), {"deployment": "fixture-gone"}, console=quiet())
    run = archive.find_run("latest")
    run.record.status = Status.RUNNING
    run.entry("raises").status = Status.RUNNING
    run.record.runner["pid"] = 2 ** 22 + 12345  # no such process
    run.save()
    assert archive.find_run("latest").status == Status.ABANDONED
    with pytest.raises(runner.RunFailed):  # resumes (and fails again in the same cell)
        runner.run(None, {"deployment": "fixture-gone"}, resume=True, console=quiet())
    run = archive.find_run("latest")
    previous = run.entry("raises").previous_attempts[0]
    assert previous.status == Status.KILLED and previous.failure.reason == "the runner stopped while this notebook was running"
    assert written(run)["notebooks"][0]["previous_attempts"][0]["failure"] == {
        "reason": "the runner stopped while this notebook was running"}


def test_plain_papermill_still_works_and_leaves_scraps(records_env):
    """`papermill in.ipynb out.ipynb -p ...` needs no runner: scraps are in the notebook and in the deployment's state."""
    import scrapbook as sb

    out = records_env / "out.ipynb"
    subprocess.run([sys.executable, "-m", "papermill", str(FIXTURES / "ok.ipynb"), str(out), "-p", "deployment", "fixture-plain",
                    "-p", "greeting", "bonjour", "--no-progress-bar"], check=True, capture_output=True, cwd=REPO)
    assert sb.read_notebook(str(out)).scraps["greeting"].data == "bonjour"
    from eks_hub_runbook import records
    assert records.recall("fixture-plain", "greeting") == "bonjour"


# -- the whole run's parameters, checked before the first notebook starts (the real runbooks) --

RUNBOOK_DIR = REPO / "runbooks"


def plan(parameters, *names):
    from eks_hub_runbook.notebook import contract

    selected = runner.discover(list(names) or None, all_notebooks=not names, notebook_dir=RUNBOOK_DIR)
    return runner.plan_parameters([contract.read(path) for _, path in selected], parameters)


@pytest.mark.sandbox  # the runbooks default to the sandbox target
def test_all_without_confirm_is_refused_before_anything_runs(records_env):
    started = time.monotonic()
    with pytest.raises(ParameterError) as error:
        runner.run(runner.discover(None, True, notebook_dir=RUNBOOK_DIR), {"auth": "cognito"}, console=quiet())
    assert error.value.parameter == "confirm" and "05_cleanup deletes the deployment and confirm is False" in str(error.value)
    assert "-p confirm True" in error.value.fix
    assert not (records_env / "outputs").exists() and not (records_env / "state" / "deployments").exists()
    assert time.monotonic() - started < 30


@pytest.mark.sandbox
def test_each_parameter_goes_to_the_notebooks_that_declare_it(records_env):
    per_notebook = plan({"auth": "cognito", "confirm": True, "domain": "hub.example.org", "profile": "gpu-time-slicing"})
    assert per_notebook["02_deploy"] == {"auth": "cognito", "domain": "hub.example.org"}
    assert per_notebook["03_verify"] == {"auth": "cognito"}
    assert per_notebook["04_gpu_sharing"] == {"auth": "cognito", "profile": "gpu-time-slicing"}
    assert per_notebook["05_cleanup"] == {"auth": "cognito", "confirm": True}


@pytest.mark.sandbox
def test_every_bad_parameter_of_the_run_is_reported_at_once(records_env):
    with pytest.raises(ParameterError) as error:
        plan({"jupyterhub_domain": "hub.example.com", "domian": "x", "vpc_cidr": "10.1.0.0/33", "region": "mars-1",
              "timeout_minutes": 0})
    by_name = {e.parameter: e for e in error.value.errors}
    assert set(by_name) == {"jupyterhub_domain", "domian", "vpc_cidr"}, "unknown names first, before values are judged"
    assert "`domain`" in by_name["jupyterhub_domain"].problem and by_name["domian"].fix == "did you mean `domain`?"
    with pytest.raises(ParameterError) as error:
        plan({"region": "mars-1", "timeout_minutes": 0, "kubernetes_version": "1.20"})
    messages = [str(e) for e in error.value.errors]
    assert {e.parameter for e in error.value.errors} == {"region", "timeout_minutes", "kubernetes_version", "confirm"}
    region = next(m for m in messages if m.startswith("parameter 'region'"))
    assert "(in 00_prerequisites, 01_certificate, 02_deploy, 03_verify, 04_gpu_sharing, 05_cleanup)" in region


@pytest.mark.sandbox
def test_a_later_notebook_is_checked_against_the_record_or_what_02_will_record(records_env, monkeypatch):
    saved = {"target": "sandbox", "deployment": "jupyterhub-on-eks", "region": "us-west-2", "auth": "cognito",
             "domain": "hub.example.com", "allowed_users": ["user-1@example.com"]}
    monkeypatch.setattr(runner, "recorded_parameters", lambda deployment: dict(saved))
    with pytest.raises(ParameterError) as error:
        plan({"auth": "oauth"}, "03")
    assert error.value.parameter == "auth" and "deployed with auth 'cognito'" in error.value.problem
    assert "(in 03_verify)" in error.value.problem
    # with 02 in the run, 03 is held against what this 02 will record
    assert plan({"auth": "oauth"}, "02", "03")["03_verify"] == {"auth": "oauth"}
    assert plan({}, "03", "04")["04_gpu_sharing"] == {}
