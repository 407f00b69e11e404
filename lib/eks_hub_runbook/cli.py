"""The ``runbook`` command: a thin typer layer over the library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import targets
from .terminal import print_table

app = typer.Typer(help="Deploy, verify and tear down JupyterHub on EKS (or the local sandbox).", no_args_is_help=True)
for _name in targets.names():  # a target's own commands: `runbook sandbox up` ...
    _commands = targets.get(_name).cli()
    if _commands is not None:
        app.add_typer(_commands, name=_name)


def _print_table(rows: list[dict]) -> None:
    print_table(rows, typer.echo)


# -- runs and their records (records/runner.py, records/archive.py, records/report.py) --

records_app = typer.Typer(help="Archived runs under outputs/: list, show, HTML report.", no_args_is_help=True)
app.add_typer(records_app, name="records")

_PARAMETER_FLAGS = ("-p", "--parameter", "-r", "--parameter-raw")


def _split_run_arguments(tokens: list[str]) -> tuple[list[str], list[str]]:
    """Separate notebook names from ``-p NAME VALUE`` / ``-r NAME VALUE`` triples."""
    notebooks, parameter_tokens, i = [], [], 0
    while i < len(tokens):
        if tokens[i] in _PARAMETER_FLAGS:
            parameter_tokens += tokens[i : i + 3]
            i += 3
        else:
            notebooks.append(tokens[i])
            i += 1
    return notebooks, parameter_tokens


def _command_line(names: list[str], all_notebooks: bool, parameters_file: Optional[Path], parameter_tokens: list[str],
                  target: Optional[str], resume: bool, run_ref: Optional[str], tfvars: Optional[Path] = None) -> str:
    """The ``runbook run`` command as the record shows it, rebuilt from what was parsed (not from sys.argv,
    which belongs to whatever process hosts the CLI: a shell, pytest, a worker)."""
    import shlex

    words = ["runbook", "run", *names]
    words += ["--all"] if all_notebooks else []
    words += ["--tfvars", str(tfvars)] if tfvars else []
    words += ["-f", str(parameters_file)] if parameters_file else []
    words += parameter_tokens
    words += ["--target", target] if target else []
    words += ["--resume"] if resume else []
    words += ["--run", run_ref] if run_ref else []
    return shlex.join(words)


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@app.command("run", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def run_command(
    ctx: typer.Context,
    notebooks: Annotated[Optional[list[str]], typer.Argument(
        help="Notebooks to run, in order: names (02_deploy), numbers (02) or paths. "
             "Parameters: -p NAME VALUE (papermill-style: True/False/None/numbers converted), -r NAME VALUE (raw text).",
        show_default=False)] = None,
    all_notebooks: Annotated[bool, typer.Option("--all", help="Run every notebook in runbooks/, in order.")] = False,
    parameters_file: Annotated[Optional[Path], typer.Option("-f", "--parameters-file", help="YAML mapping of parameters (overridden by -p).")] = None,
    tfvars: Annotated[Optional[Path], typer.Option(
        "--tfvars", help="The original blueprint's blueprint.tfvars: its variables become the runbook's parameters "
                         "(jupyterhub_domain -> domain, ...); overridden by -f and -p. A client secret in it is refused.")] = None,
    target: Annotated[Optional[str], typer.Option("--target", help="sandbox (default) or aws: sets the `target` parameter.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the latest failed run from the notebook that failed.")] = False,
    run_ref: Annotated[Optional[str], typer.Option("--run", help="With --resume: the run to continue (id or deployment/id).")] = None,
    secrets_file: Annotated[Optional[Path], typer.Option("--secrets-file", help="YAML file of secrets (mode 0600); exported to the kernel only.")] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write the HTML report when the run ends.")] = True,
    kernel: Annotated[Optional[str], typer.Option("--kernel", help="Kernel name (default: the notebook's).")] = None,
) -> None:
    """Run notebooks with papermill, live, and archive them in outputs/<deployment>/<run-id>/.

    Examples: runbook run --all -p auth cognito -p confirm True; runbook run 00 01 02 --tfvars blueprint.tfvars;
    runbook run 02 03 -f params.yaml; runbook run --resume.
    Secrets (e.g. RUNBOOK_OAUTH_CLIENT_SECRET) come from the environment or --secrets-file, never -p.
    """
    from .blueprint import parameters_from_tfvars
    from .errors import RunbookError
    from .records import inputs, report as html_report, runner

    names, parameter_tokens = _split_run_arguments(list(notebooks or []) + list(ctx.args))
    try:
        parameters = parameters_from_tfvars(tfvars) if tfvars else {}
        parameters.update(inputs.load_parameters_file(parameters_file) if parameters_file else {})
        parameters.update(inputs.parse_cli_parameters(parameter_tokens))
        if target:
            parameters["target"] = target
        selected = None if resume and not (names or all_notebooks) else runner.discover(names, all_notebooks)
        record = runner.run(selected, parameters, secrets_file=secrets_file, resume=resume, run_ref=run_ref,
                            command=_command_line(names, all_notebooks, parameters_file, parameter_tokens, target, resume, run_ref,
                                                  tfvars),
                            kernel_name=kernel)
    except runner.RunFailed as exc:
        if report:
            html_report.write_report(exc.run)
        _fail(str(exc), code=1)
    except RunbookError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted: the record says where; continue with `runbook run --resume`", code=130)
    else:
        if report:
            typer.echo(f"report: {html_report.write_report(record)}")
        typer.echo(f"record: {record.dir}")


@records_app.command("list")
def records_list(
    deployment: Annotated[Optional[str], typer.Option("--deployment", "-d", help="Only this deployment's runs.")] = None,
) -> None:
    """A table of runs: status, target, start, duration, notebooks done, parameters."""
    from .records import archive

    rows = [run.summary_row() for run in archive.iter_runs(deployment=deployment)]
    if not rows:
        typer.echo(f"no runs under {archive.outputs_root()}")
        return
    _print_table(rows)


@records_app.command("show")
def records_show(
    run: Annotated[str, typer.Argument(help="Run id, deployment/run-id, a unique prefix, or 'latest'.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print run.json as is.")] = False,
) -> None:
    """One run in detail: notebooks, timings, failing cell, parameters, versions."""
    import json

    from .records import archive
    from .records.model import Failure

    try:
        archived = archive.find_run(run)
    except archive.RunNotFoundError as exc:
        _fail(str(exc))
    record = archived.record
    if as_json:
        typer.echo(json.dumps(record.to_dict(), indent=2))
        return
    typer.echo(f"run        {archived.deployment}/{archived.run_id}  [{archived.status}]")
    typer.echo(f"folder     {archived.dir}")
    typer.echo(f"target     {record.target}    started {record.started_at}    "
               f"duration {archive.format_duration(record.duration_s)}")
    typer.echo(f"git        {record.git.get('commit')}{' (dirty)' if record.git.get('dirty') else ''}")
    typer.echo(f"parameters {', '.join(f'{k}={v!r}' for k, v in sorted(record.parameters.items())) or '(defaults)'}")
    if record.secrets:
        typer.echo(f"secrets    {', '.join(f'{k} from {v}' for k, v in sorted(record.secrets.items()))}")
    typer.echo("")
    rows = []
    for entry in archived.notebooks:
        failure = entry.failure or Failure()
        slowest = max(entry.cells, key=lambda c: c.duration_s or 0, default=None)
        rows.append({
            "notebook": entry.name, "status": str(entry.status), "attempt": entry.attempt,
            "duration": archive.format_duration(entry.duration_s),
            "slowest cell": f"{slowest.index} ({archive.format_duration(slowest.duration_s)})" if slowest and slowest.duration_s else "",
            "stopped at": f"cell {failure.cell_index}" if failure.cell_index is not None else (failure.reason or "")[:40],
        })
    _print_table(rows)
    failure = record.failure
    if failure:
        cell = "?" if failure.cell_index is None else failure.cell_index
        typer.echo(f"\nfailed in {failure.notebook}, cell {cell}"
                   f" (In [{failure.execution_count or ' '}]): {failure.first_line or ''}")
        typer.echo(f"  {failure.reason or (str(failure.ename or '') + ': ' + str(failure.evalue or ''))}")
        typer.echo(f"  continue with: runbook run --resume --run {archived.run_id}")


@records_app.command("report")
def records_report(
    run: Annotated[str, typer.Argument(help="Run id, deployment/run-id, a unique prefix, or 'latest'.")],
) -> None:
    """Write the run's HTML report (nbconvert pages + an index) and the outputs/ index."""
    from .records import archive, report as html_report

    try:
        record = archive.find_run(run)
    except archive.RunNotFoundError as exc:
        _fail(str(exc))
    index = html_report.write_report(record)
    html_report.write_index()
    typer.echo(f"report: {index}")


@app.command("golden")
def golden_command(
    variant: Annotated[Optional[list[str]], typer.Option("--variant", help="Only these variants (dummy, cognito).")] = None,
) -> None:
    """Regenerate the golden notebooks under tests/golden/ from a fresh sandbox run (make golden)."""
    from .errors import RunbookError
    from .records import golden

    try:
        written = golden.regenerate(variant or None)
    except RunbookError as exc:
        _fail(str(exc), code=1)
    for path in written:
        typer.echo(f"wrote {path}")


# -- load check (loadtest.py) --

@app.command("loadtest")
def loadtest_command(
    users: Annotated[int, typer.Option("--users", "-n", min=1, max=100, help="How many users start a server at once.")],
    profile: Annotated[str, typer.Option("--profile", help="Profile slug every user starts (default: the one the hub preselects).")] = "",
    hub_url: Annotated[Optional[str], typer.Option("--hub-url", help="The hub's URL (default: the target's local hub).")] = None,
    admin_user: Annotated[Optional[str], typer.Option(
        "--admin-user", help="A hub admin who logs in to create the load users and their tokens "
                             "(or export RUNBOOK_HUB_ADMIN_TOKEN). Without one, users log in through the login page.")] = None,
    kubeconfig: Annotated[Optional[Path], typer.Option(
        "--kubeconfig", help="Cluster access for GPU node counts and the orphan-pod check "
                             "(default: the target's local cluster when the hub is its local one).")] = None,
    deployment: Annotated[str, typer.Option("--deployment", help="Deployment name (record folder).")] = "jupyterhub-on-eks",
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Record folder (default: outputs/<deployment>/loadtest-<run id>/).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds for all logins and spawns.")] = 900.0,
    insecure: Annotated[bool, typer.Option("--insecure", help="Accept a self-signed hub certificate.")] = False,
    target: Annotated[str, typer.Option("--target", help="Where the hub runs, for the defaults of --hub-url and --kubeconfig.")] = targets.DEFAULT,
) -> None:
    """Start N servers at once: time to ready (p50/p95/max), every server answers, GPU nodes vs ideal, no orphans."""
    from . import kube, loadtest
    from .errors import RunbookError
    from .platform import facts
    from .records import archive

    local = targets.get(target)
    url = hub_url or local.local_hub_url()
    if not url:
        _fail(f"target {target!r} serves no hub on this machine: give --hub-url")
    api = None
    local_config = local.local_kubeconfig() if hub_url is None else None
    config = kubeconfig or (local_config if local_config and local_config.exists() else None)
    if config is not None:
        api = kube.load_client(config)
    folder = out or archive.outputs_root() / deployment / f"loadtest-{archive.new_run_id()}"
    try:
        result = loadtest.run(url, users, profile or facts.default_profile(), out_dir=folder, admin_user=admin_user, kube_api=api,
                              timeout=timeout, verify=not insecure, progress=typer.echo,
                              emulated_delays=local.emulated_delays() if hub_url is None else None)
    except RunbookError as exc:
        _fail(str(exc), code=1)
    typer.echo("")
    _print_table(result.rows())
    typer.echo("")
    _print_table(result.summary_rows())
    if result.phase_rows():
        typer.echo("")
        _print_table(result.phase_rows())
    typer.echo(f"\nrecord: {folder}")
    if not result.passed:
        raise typer.Exit(1)



@app.command("lab")
def lab_command(
    target: Annotated[str, typer.Option(help="sandbox (started here) or aws (credentials checked)")] = targets.DEFAULT,
    port: Annotated[Optional[int], typer.Option(help="port on 127.0.0.1 (default: a free one)")] = None,
) -> None:
    """The workshop: bring the target up, open JupyterLab on the runbooks with the forms on, print its URL.

    Each notebook's last cell archives it into one run record for the session (outputs/<deployment>/<run-id>/).
    """
    from . import lab
    from .errors import RunbookError

    if target not in targets.names():
        _fail(f"--target {target!r} is not one of {', '.join(targets.names())}. Fix: pass --target {targets.names()[0]}")
    try:
        lab.serve(target, port=port, echo=typer.echo)
    except RunbookError as exc:
        _fail(str(exc))


DEMO_NOTEBOOKS = ("00_prerequisites", "01_certificate", "02_deploy", "03_verify", "04_gpu_sharing")


@app.command("demo", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def demo_command(ctx: typer.Context) -> None:
    """Rehearse the walkthrough: run 00 to 04 (sandbox by default), archive the run, leave the hub up.

    Takes the same -p NAME VALUE parameters as `runbook run`, e.g. runbook demo -p auth cognito -p domain hub.example.com.
    """
    from .params import DeploymentParameters
    from .records import inputs, recall

    _, parameter_tokens = _split_run_arguments(list(ctx.args))
    deployment = str(inputs.parse_cli_parameters(parameter_tokens).get("deployment", DeploymentParameters.deployment))
    ctx.invoke(run_command, ctx=ctx, notebooks=list(DEMO_NOTEBOOKS), all_notebooks=False, parameters_file=None,
               tfvars=None, target=None, resume=False, run_ref=None, secrets_file=None, report=True, kernel=None)
    hub_url = recall(deployment, "hub_url")
    typer.echo("")
    if hub_url:
        typer.echo(f"The hub is running: {hub_url}  (log in as user-1 or user-2)")
    typer.echo(f"When you are done, tear everything down with:\n  runbook run 05_cleanup -p deployment {deployment} -p confirm True")


if __name__ == "__main__":
    app()
