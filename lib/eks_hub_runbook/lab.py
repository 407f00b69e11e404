"""The workshop: JupyterLab 4 on loopback in ``runbooks/``, the forms on, each session a run record.

``runbook lab`` (``make workshop``) brings the target up (the sandbox's services, or a check of
the AWS credentials for ``--target aws``), then starts JupyterLab with the project's kernel and
prints the URL with its token. What it changes against a plain ``jupyter lab``:

- kernels get ``RUNBOOK_FORMS=1`` (the parameter forms show without editing ``interactive``)
  and ``RUNBOOK_RUN_ID`` (the run record every notebook of the session archives into), set by
  :class:`WorkshopKernelSpecs` on the kernels only: a papermill run typed in a JupyterLab
  terminal stays headless;
- JupyterLab's settings (a private settings folder): autosave every 2 s, so a notebook's last
  cell can archive it as the presenter sees it (:mod:`.records.interactive`); cell timings
  recorded (the run record's per-cell durations); no news or update pop-ups over the notebook;
- it serves a fresh copy of the runbooks (``<state>/lab/notebooks/``), so a session's outputs
  never land in the repository's clean ``runbooks/``; the run record keeps what was run;
- its runtime, config, data, settings and workspace files live in the state folder, never in ``~``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from jupyter_client.kernelspec import KernelSpecManager

from .errors import RunbookError
from .paths import RUNBOOKS_DIR, state_dir
from .records.archive import new_run_id
from .records.interactive import RUN_ID_ENV
from .records.redact import register_secret
from .terminal import print_table


LAB_RUN_ID_ENV = "RUNBOOK_LAB_RUN_ID"  # the server's copy, handed to its kernels only
AUTOSAVE_SECONDS = 2

# JupyterLab user settings (plugin id -> values), written to the private settings folder.
SETTINGS = {
    "@jupyterlab/docmanager-extension:plugin": {"autosave": True, "autosaveInterval": AUTOSAVE_SECONDS},
    "@jupyterlab/notebook-extension:tracker": {"recordTiming": True},
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


class WorkshopKernelSpecs(KernelSpecManager):
    """The installed kernel specs, plus the workshop's environment for the kernels they start."""

    def get_kernel_spec(self, kernel_name):
        from .notebook.forms import FORMS_ENV

        spec = super().get_kernel_spec(kernel_name)
        spec.env = {**(spec.env or {}), FORMS_ENV: "1", RUN_ID_ENV: os.environ.get(LAB_RUN_ID_ENV, "")}
        return spec


@dataclass
class Lab:
    """A running JupyterLab: its process, URL (with the token) and the session's run id."""

    process: subprocess.Popen
    base_url: str
    token: str = field(repr=False)
    run_id: str
    log: Path

    @property
    def url(self) -> str:
        """The address to open, token included (a secret: not for records)."""
        return f"{self.base_url}lab?token={self.token}"

    def notebook_url(self, name: str) -> str:
        """The address of one runbook in this lab (``00_prerequisites``), token included; it opens
        alone (``reset``: the tabs of earlier notebooks close, their kernels keep running)."""
        return f"{self.base_url}lab/tree/{name}.ipynb?reset&token={self.token}"

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server and the kernels it started."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def lab_dir() -> Path:
    """The workshop's private folder (settings, workspaces, runtime files, log)."""
    path = state_dir() / "lab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def copy_runbooks(source: Path, folder: Path) -> Path:
    """A fresh working copy of the runbooks for one session (the previous session's copy goes)."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for notebook in sorted(source.glob("*.ipynb")):
        shutil.copyfile(notebook, folder / notebook.name)
    return folder


def write_settings(folder: Path) -> Path:
    """JupyterLab's user settings for a workshop (:data:`SETTINGS`) in ``folder``."""
    for plugin, values in SETTINGS.items():
        package, name = plugin.split(":")
        path = folder / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2) + "\n")
    return folder


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_target(target: str, region: str = "us-west-2") -> list[dict[str, str]]:
    """What must answer before the workshop starts: the sandbox's services (started here), or the
    AWS identity for ``aws``. Rows ``check, needed, found, status``; raises when one fails."""
    from . import params as P, targets
    from .aws import identity

    params = P.resolve(target=target, region=region)
    rows = list(targets.get(target).service_rows(params, start=True, hub_tools=True))
    if target != targets.DEFAULT:
        try:
            who = identity.caller_identity(target, region)
            rows.append({"check": "AWS credentials", "needed": "a caller identity", "found": who.arn, "status": "pass"})
        except Exception as exc:  # noqa: BLE001 - botocore's NoCredentialsError, ClientError...
            rows.append({"check": "AWS credentials", "needed": "a caller identity",
                         "found": f"{exc.__class__.__name__}: {exc}"[:200], "status": "fail"})
    failed = [row["check"] for row in rows if row["status"] == "fail"]
    if failed:
        lines: list[str] = []
        print_table(rows, lines.append)
        raise RunbookError(f"the workshop cannot start, {', '.join(failed)} failed:\n" + "\n".join(lines) + "\n"
                           "Fix: `runbook sandbox up` shows the sandbox's errors; for --target aws configure "
                           "credentials (aws configure, AWS_PROFILE)")
    return rows


def start(port: int | None = None, run_id: str | None = None, notebook_dir: Path = RUNBOOKS_DIR,
          timeout: float = 60.0) -> Lab:
    """Start JupyterLab on 127.0.0.1 on a fresh copy of ``notebook_dir``; returns once it answers."""
    folder = lab_dir()
    token = secrets.token_hex(24)
    register_secret(token)
    run_id = run_id or new_run_id()
    port = port or _free_port()
    settings = write_settings(folder / "settings")
    notebooks = copy_runbooks(notebook_dir, folder / "notebooks")
    env = {
        **os.environ,
        LAB_RUN_ID_ENV: run_id,
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        "JUPYTER_CONFIG_DIR": str(folder / "config"),  # not ~/.jupyter (the server writes there at start)
        "JUPYTER_DATA_DIR": str(folder / "data"),  # its trust database and secret, not ~/.local/share/jupyter
    }
    env.pop(RUN_ID_ENV, None)
    log = folder / "jupyterlab.log"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--ServerApp.root_dir={notebooks}", "--ServerApp.open_browser=False",
        f"--ServerApp.kernel_spec_manager_class={__name__}.WorkshopKernelSpecs",
        "--LabApp.news_url=", "--LabApp.extension_manager=readonly", "--ServerApp.log_level=WARN",
        *(["--allow-root"] if os.geteuid() == 0 else []),  # containers and CI run as root
    ]
    with open(log, "ab") as out:
        process = subprocess.Popen(command, env={**env, "JUPYTER_TOKEN": token}, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    lab = Lab(process=process, base_url=f"http://127.0.0.1:{port}/", token=token, run_id=run_id, log=log)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RunbookError(f"JupyterLab stopped at start (exit {process.returncode}); see {log}")
        try:
            request = urllib.request.Request(f"{lab.base_url}api/status", headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(request, timeout=2):
                return lab
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                lab.stop()
                raise RunbookError(f"JupyterLab did not answer within {timeout:.0f} s; see {log}") from None
            time.sleep(0.3)


@contextmanager
def running(port: int | None = None, run_id: str | None = None) -> Iterator[Lab]:
    """JupyterLab for the duration of a block (tests, scripts)."""
    lab = start(port=port, run_id=run_id)
    try:
        yield lab
    finally:
        lab.stop()


def serve(target: str, port: int | None = None, echo=print) -> None:
    """``runbook lab``: check the target, start JupyterLab, print its URL, wait for Ctrl-C."""
    print_table(check_target(target), echo)
    lab = start(port=port)
    echo(f"\nJupyterLab is running (the runbooks, forms on; this session's run record: {lab.run_id}):\n\n"
         f"    {lab.url}\n\nOpen 00_prerequisites.ipynb and run it; each notebook's last cell archives it.\n"
         "Stop with Ctrl-C.")
    try:
        lab.process.wait()
    except KeyboardInterrupt:
        echo("stopping JupyterLab")
    finally:
        lab.stop()
