"""The workshop in JupyterLab, played by a presenter in Debian's Chromium (issue 14).

``lab.check_target`` and ``lab.running`` are what ``make workshop`` (``runbook lab``) does; the
presenter opens 00 to 05 in order, shows each form, switches the login to Cognito where the
notebook asks for it, runs all cells and looks at what the page shows. 05 is run once before
``confirm`` is ticked (it must stop there, with the deployment untouched) and once after.
The session's run record must then hold the six notebooks, and its report the screenshots.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from eks_hub_runbook import lab
from eks_hub_runbook.records import archive, interactive, recall
from eks_hub_runbook.records.model import Status
from eks_hub_runbook.records.report import screenshots_in_order

SEQUENCE = ("00_prerequisites", "01_certificate", "02_deploy", "03_verify", "04_gpu_sharing", "05_cleanup")
CHOOSES_AUTH = ("00_prerequisites", "01_certificate", "02_deploy")  # later notebooks read what 02 recorded
DEPLOYMENT = "jupyterhub-on-eks"  # the forms' default: the presenter types no name


def test_the_workshop_kernels_get_the_forms_and_the_run_id(monkeypatch):
    """The environment goes to the kernels the lab starts, not to the server (nor its terminals)."""
    from eks_hub_runbook.notebook.forms import FORMS_ENV

    monkeypatch.setenv(lab.LAB_RUN_ID_ENV, "20261203-101010-abcd")
    spec = lab.WorkshopKernelSpecs().get_kernel_spec("python3")
    assert spec.env[FORMS_ENV] == "1" and spec.env[interactive.RUN_ID_ENV] == "20261203-101010-abcd"
    assert any("eks_hub_runbook.kernel" in arg for arg in spec.argv), "the project's kernel, with its extension"


def test_the_settings_autosave_and_record_timings(tmp_path):
    folder = lab.write_settings(tmp_path)
    docmanager = json.loads((folder / "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings").read_text())
    tracker = json.loads((folder / "@jupyterlab/notebook-extension/tracker.jupyterlab-settings").read_text())
    assert docmanager == {"autosave": True, "autosaveInterval": lab.AUTOSAVE_SECONDS}
    assert tracker == {"recordTiming": True}


def test_the_session_serves_a_copy_of_the_runbooks(tmp_path):
    from eks_hub_runbook.paths import RUNBOOKS_DIR

    copy = lab.copy_runbooks(RUNBOOKS_DIR, tmp_path / "notebooks")
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in RUNBOOKS_DIR.glob("*.ipynb"))
    (copy / "stale.ipynb").write_text("{}")
    assert not (lab.copy_runbooks(RUNBOOKS_DIR, copy) / "stale.ipynb").exists(), "each session starts clean"


def _present(presenter, name: str, forms: dict[str, Path], folder: Path) -> float:
    """One notebook as the presenter walks it; the seconds it took."""
    started = time.monotonic()
    presenter.open(name)
    presenter.show_form()
    if name == "00_prerequisites":  # a typo shows its problem beside the field, then is fixed
        presenter.type("domain", "hub..example.com")
        assert presenter.feedback() == ["✘ 'hub..example.com' is not a valid DNS name"]
        presenter.type("domain", "")
    if name in CHOOSES_AUTH:
        presenter.choose("auth", "cognito")
        assert presenter.feedback() == []
    forms[name] = presenter.form_screenshot(folder / "forms" / f"{name}.png")
    if name == "05_cleanup":
        presenter.run_all()
        refused = presenter.look()
        assert any("confirm" in text for text in refused.errors), refused.errors
        assert not any("Traceback" in text for text in refused.errors), "a short message, no traceback"
        assert refused.not_run >= 5, "nothing after the parameters ran"
        with urllib.request.urlopen(recall(DEPLOYMENT, "hub_url") + "/hub/health", timeout=10) as answer:
            assert answer.status == 200, "the deployment is untouched: its hub still answers"
        presenter.tick("confirm")
    presenter.run_all()
    view = presenter.look()
    assert view.widgets > 10, f"{name}: the form is rendered DOM, not text"
    assert view.shortcomings(chart=name == "04_gpu_sharing") == [], (name, view)
    if name != "05_cleanup":  # 05's tables list what it deleted (an action column), and its leftovers: none
        assert any("pass" in status for status in view.statuses), (name, view.statuses)
    return round(time.monotonic() - started, 1)


def _present_in_chromium(session, names, forms: dict[str, Path], folder: Path) -> dict[str, float]:
    """The notebooks ``names`` in one Chromium page; a screenshot is kept of the one that fails."""
    from playwright.sync_api import sync_playwright

    from eks_hub_runbook.browser.chromium import CHROMIUM_FLAGS, chromium_path
    from eks_hub_runbook.browser.presenter import Presenter

    seconds = {}
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(chromium_path()), args=list(CHROMIUM_FLAGS))
        presenter = Presenter(chromium.new_page(viewport={"width": 1280, "height": 900}), session)
        for name in names:
            try:
                seconds[name] = _present(presenter, name, forms, folder)
            except BaseException:
                print(f"screenshot of the failing notebook: {presenter.screenshot(folder / f'FAILED-{name}.png')}")
                raise
            print(f"{name}: {seconds[name]} s", flush=True)
        chromium.close()
    return seconds


@pytest.mark.browser
@pytest.mark.sandbox
@pytest.mark.terraform
@pytest.mark.slow
def test_a_presenter_runs_00_to_05_in_jupyterlab(tmp_path, monkeypatch):
    import eks_hub_sandbox as sandbox

    from eks_hub_runbook import browser, gpu_sharing, params as P

    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))  # its own sandbox, kernels and records
    monkeypatch.setenv("RUNBOOK_OUTPUTS_DIR", str(tmp_path / "outputs"))
    seconds: dict[str, float] = {}
    forms: dict[str, Path] = {}
    try:
        lab.check_target("sandbox")
        with lab.running() as session:
            seconds.update(_present_in_chromium(session, SEQUENCE[:5], forms, tmp_path))
            # the hub's pages for the record, as a user in the room sees them (a Chromium of its own)
            params = P.resolve(**{**recall(DEPLOYMENT, "parameters"), "target": "sandbox"})
            hub = browser.walkthrough(recall(DEPLOYMENT, "hub_url"), tmp_path / "hub", users=["user-1"],
                                      auth="cognito", password=gpu_sharing.passwords(params, ("user-1",)),
                                      spawn_timeout=120)
            seconds.update(_present_in_chromium(session, SEQUENCE[5:], forms, tmp_path))
            run_id = session.run_id

        run = archive.find_run(f"{DEPLOYMENT}/{run_id}")
        assert run.record.command == "runbook lab" and run.record.status == Status.SUCCEEDED
        assert [e.name for e in run.notebooks] == list(SEQUENCE)
        for entry in run.notebooks:
            assert entry.status == Status.SUCCEEDED and (run.dir / entry.output).is_file(), entry
            assert entry.duration_s and all(c.duration_s is not None for c in entry.cells[:-1]), entry.name
        assert run.notebook("02_deploy")["parameters"] == {"auth": "cognito"}
        # later notebooks found what earlier ones recorded, given nothing but the forms' defaults
        scraps = {entry.name: entry.scraps for entry in run.notebooks}
        assert scraps["00_prerequisites"]["prerequisites"] == {"target": "sandbox", "auth": "cognito", "passed": True}
        assert scraps["01_certificate"]["certificate_arn"].startswith("arn:aws:acm:")
        assert scraps["02_deploy"]["hub_url"].startswith("http://127.0.0.1:")
        assert scraps["02_deploy"]["parameters"]["auth"] == "cognito" and scraps["03_verify"]["verified"] is True
        placement = scraps["04_gpu_sharing"]["gpu_sharing"]["placement"]
        assert len(placement) == 2 and len({row["node"] for row in placement}) == 1, "two users, one GPU node"
        assert run.notebook("05_cleanup")["attempt"] == 1 and scraps["05_cleanup"]["cleanup"]["leftovers"] == 0
        assert not sandbox.is_up("aws") and not sandbox.is_up("kube"), "05 stopped the sandbox"

        for name, shot in forms.items():
            interactive.add_screenshots(run, name, [(f"{name}: the form", shot)])
        interactive.add_screenshots(run, "04_gpu_sharing", hub.screenshots)
        listed = screenshots_in_order(run)
        assert [s["notebook"] for s in listed][:6] == ["00_prerequisites", "01_certificate", "02_deploy", "03_verify",
                                                        "04_gpu_sharing", "04_gpu_sharing"]
        assert {"user-1 login", "user-1 terminal"} <= {s["caption"] for s in listed}
        report = (run.dir / "report" / "index.html").read_text()
        images = re.findall(r'<img src="\.\./([^"]+)"', report)
        assert images == [s["path"] for s in listed] and all((run.dir / path).is_file() for path in images)
        assert session.token not in report and session.token not in (run.dir / "run.json").read_text()
        print(json.dumps({"seconds_per_notebook": seconds, "run": str(run.dir)}))
    finally:
        sandbox.down()


def test_runbook_lab_refuses_an_unknown_target_before_starting_anything(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from eks_hub_runbook.cli import app

    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["lab", "--target", "azure"])
    from eks_hub_runbook import targets

    assert result.exit_code == 2, result.output
    assert f"--target 'azure' is not one of {', '.join(targets.names())}. Fix: pass --target" in result.output
    assert not (tmp_path / "lab").exists()
