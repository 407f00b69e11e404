"""``runbook sandbox ...``: the sandbox target's own commands (up, down, status, env)."""

from __future__ import annotations

import typer

from eks_hub_runbook.terminal import print_table

app = typer.Typer(help="The local sandbox: AWS (moto) and an EKS stand-in on 127.0.0.1.", no_args_is_help=True)


@app.command("up")
def sandbox_up() -> None:
    """Start the sandbox services (idempotent: running ones are reused)."""
    from . import up

    print_table([s.as_row() for s in up()], typer.echo)
    typer.echo('\nPoint your shell at it with:  eval "$(runbook sandbox env)"')


@app.command("down")
def sandbox_down() -> None:
    """Stop every sandbox service this checkout started (and their child processes)."""
    from . import down

    stopped = down()
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command("status")
def sandbox_status() -> None:
    """Show what runs where."""
    from . import status

    print_table([s.as_row() for s in status()], typer.echo)


@app.command("env")
def sandbox_env() -> None:
    """Print export lines: eval "$(runbook sandbox env)" points aws, terraform, kubectl and boto3 at the sandbox."""
    from . import export_lines

    typer.echo(export_lines())
