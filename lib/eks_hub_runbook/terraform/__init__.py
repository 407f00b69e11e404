"""Run the Terraform CLI for a deployment: working directory, variables, init/plan/apply/
destroy/output with live progress, staged runs and retries.

Typical use (notebook 02)::

    ws = terraform.prepare(params, certificate_arn=arn)
    terraform.plan(ws).rows()          # what will change, as a table
    terraform.deploy(ws)               # network, cluster, everything (retried, resumable)
    terraform.output(ws)               # outputs; sensitive ones masked when shown
    terraform.plan_after_apply_is_empty(ws)

The CLI is called by subprocess (never python-terraform, which cannot stream and whose
destroy is broken on Terraform >= 0.15).
"""

from .commands import (
    ApplyResult,
    BackgroundPlan,
    Outputs,
    Plan,
    RunResult,
    apply,
    destroy,
    ensure_initialized,
    fmt_check,
    init,
    inputs_fingerprint,
    output,
    plan,
    plan_after_apply_is_empty,
    run,
    state_ids,
    state_list,
    validate,
)
from .events import Diagnostic, Event, PlannedChange, describe, parse_line
from .retry import RetryPolicy, all_transient, is_transient
from .stages import APPLY_STAGES, DESTROY_STAGES, Stage, StageResult, deploy, teardown
from .variables import SECRET_VARIABLES, render_variables, secret_environment
from .workspace import Workspace, prepare, provider_mirror, remove, write_cli_config

__all__ = [
    "APPLY_STAGES", "DESTROY_STAGES", "ApplyResult", "BackgroundPlan", "Diagnostic", "Event", "Outputs", "Plan", "PlannedChange",
    "RetryPolicy", "RunResult", "SECRET_VARIABLES", "Stage", "StageResult", "Workspace", "all_transient", "apply",
    "deploy", "describe", "destroy", "ensure_initialized", "fmt_check", "init", "inputs_fingerprint", "is_transient", "output",
    "parse_line", "plan", "plan_after_apply_is_empty", "prepare", "provider_mirror", "remove", "render_variables",
    "run", "secret_environment", "state_ids", "state_list", "teardown", "validate", "write_cli_config",
]
