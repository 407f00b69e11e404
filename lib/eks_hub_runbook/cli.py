"""The ``runbook`` command: a thin typer layer over the library."""

from __future__ import annotations

import typer

from . import sandbox

app = typer.Typer(help="Deploy, verify and tear down JupyterHub on EKS (or the local sandbox).", no_args_is_help=True)
sandbox_app = typer.Typer(help="The local sandbox: AWS (moto) and an EKS stand-in on 127.0.0.1.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")


def _print_table(rows: list[dict]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    typer.echo("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        typer.echo("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


@sandbox_app.command("up")
def sandbox_up() -> None:
    """Start the sandbox services (idempotent: running ones are reused)."""
    statuses = sandbox.up()
    _print_table([s.as_row() for s in statuses])
    typer.echo('\nPoint your shell at it with:  eval "$(runbook sandbox env)"')


@sandbox_app.command("down")
def sandbox_down() -> None:
    """Stop every sandbox service this checkout started (and their child processes)."""
    stopped = sandbox.down()
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@sandbox_app.command("status")
def sandbox_status() -> None:
    """Show what runs where."""
    _print_table([s.as_row() for s in sandbox.status()])


@sandbox_app.command("env")
def sandbox_env() -> None:
    """Print export lines: eval "$(runbook sandbox env)" points aws, terraform, kubectl and boto3 at the sandbox."""
    typer.echo(sandbox.export_lines())


if __name__ == "__main__":
    app()
