"""The install context: the Terraform outputs checked once, the template variables computed
once, and what it hands the install steps equal to rendering each piece directly."""

from __future__ import annotations

import pytest

from eks_hub_runbook.errors import PlatformError
from eks_hub_runbook.platform import charts, context, manifests, values


def test_a_context_renders_what_the_direct_calls_render(deployment_params, terraform_outputs, oauth_secret_env):
    for auth in ("dummy", "cognito", "oauth"):
        params = deployment_params[auth]
        ctx = context.build(params, terraform_outputs)
        assert ctx.hub_values() == values.jupyterhub_values(params, terraform_outputs)
        for group in manifests.groups():
            assert ctx.manifests(group) == manifests.render_group(group, params, terraform_outputs)
        for release in (r for r in ctx.plan() if isinstance(r, charts.Release) and r.name != "jupyterhub"):
            assert ctx.release_values(release) == values.release_values(release.values, params, terraform_outputs)
        assert (ctx.oauth_secret() is None) == (auth == "dummy")


def test_the_outputs_are_resolved_and_the_variables_computed_once(deployment_params, terraform_outputs, monkeypatch):
    calls = {"resolve": 0, "variables": 0}
    original_resolve, original_variables = context.tf_outputs.resolve, values.variables

    def counting(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(context.tf_outputs, "resolve", counting("resolve", original_resolve))
    monkeypatch.setattr(values, "variables", counting("variables", original_variables))
    ctx = context.build(deployment_params["cognito"], terraform_outputs)
    for step in ctx.plan():
        ctx.manifests(step.group) if isinstance(step, charts.ManifestStep) else \
            ctx.hub_values() if step.name == "jupyterhub" else ctx.release_values(step)
    assert calls == {"resolve": 1, "variables": 1}
    ctx.hub_values(hub_url="http://127.0.0.1:9")  # a stand-in's own hub URL: its own variables
    assert calls["variables"] == 2


def test_missing_outputs_are_named_before_anything_is_rendered(deployment_params):
    with pytest.raises(PlatformError, match="efs_file_system_id.*karpenter_queue_name"):
        context.build(deployment_params["dummy"], {"cluster_name": "x"})
