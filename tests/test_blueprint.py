"""blueprint.tfvars onto the runbook's parameters: every blueprint variable mapped, the rest and
any client secret refused at once, and only literal HCL read."""

from __future__ import annotations

import pytest

from eks_hub_runbook import blueprint, params
from eks_hub_runbook.errors import ParameterError, ParameterErrors

TYPE_3 = '''# deployment type 3, as the blueprint's README shows it
name                       = "jupyterhub-on-eks"
region                     = "us-west-2"   // the blueprint's default
jupyter_hub_auth_mechanism = "oauth"
jupyterhub_domain          = "hub.example.com"
acm_certificate_domain     = "*.example.com"
oauth_domain               = "keycloak.example.com"
oauth_jupyter_client_id    = "jupyterhub"
oauth_username_key         = "preferred_username"
/* a list over lines */
allowed_users = [
  "user-1",
  "user-2",
]
'''


def write(tmp_path, text, name="blueprint.tfvars"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_type_3_blueprint_maps_onto_the_runbook_parameters(tmp_path):
    parameters = blueprint.parameters_from_tfvars(write(tmp_path, TYPE_3))
    assert parameters == {"deployment": "jupyterhub-on-eks", "region": "us-west-2", "auth": "oauth",
                          "domain": "hub.example.com", "certificate_domain": "*.example.com",
                          "oauth_domain": "keycloak.example.com", "oauth_client_id": "jupyterhub",
                          "oauth_username_claim": "preferred_username", "allowed_users": ["user-1", "user-2"]}
    resolved = params.resolve(target="aws", **parameters)
    assert resolved.deployment_type == 3 and resolved.defaulted == ()


def test_every_blueprint_name_maps_to_a_real_parameter():
    assert set(params.BLUEPRINT_NAMES.values()) <= set(params.parameter_names())
    assert set(params.SECRET_BLUEPRINT_NAMES.values()) <= set(params.SECRET_ENV)


def test_a_client_secret_and_unmappable_variables_are_refused_together(tmp_path):
    path = write(tmp_path, TYPE_3 + 'oauth_jupyter_client_secret = "s3cr3t-in-a-file"\nvpc_cidr = "10.1.0.0/21"\ndomian = "x"\n')
    with pytest.raises(ParameterErrors) as error:
        blueprint.parameters_from_tfvars(path)
    by_name = {e.parameter: e for e in error.value.errors}
    assert set(by_name) == {"oauth_jupyter_client_secret", "vpc_cidr", "domian"}
    assert "secrets are never parameters" in by_name["oauth_jupyter_client_secret"].problem
    assert "RUNBOOK_OAUTH_CLIENT_SECRET" in by_name["oauth_jupyter_client_secret"].fix
    assert "Terraform module" in by_name["vpc_cidr"].problem
    assert by_name["domian"].fix == "did you mean `domain`?"
    assert "s3cr3t-in-a-file" not in str(error.value)


def test_literals_are_read_and_expressions_refused_with_their_line(tmp_path):
    values = blueprint.read_tfvars(write(tmp_path, 'a = 1\nb = 2.5\nc = true\nd = null\ne = "q\\"uote"\nf = []\n'))
    assert values == {"a": 1, "b": 2.5, "c": True, "d": None, "e": 'q"uote', "f": []}
    for text, problem in [('x = "${var.y}"\n', "line 1: interpolation"), ('\nx = { a = 1 }\n', "line 2: '{' is not a literal value"),
                          ("x = 1\nx = 2\n", "line 2: x is set twice"), ("x = [1 2]\n", "line 1: expected ','"),
                          ("= 1\n", "line 1: expected `name = value`")]:
        with pytest.raises(ParameterError) as error:
            blueprint.read_tfvars(write(tmp_path, text))
        assert problem in error.value.problem, (text, error.value.problem)
    assert blueprint.read_tfvars(write(tmp_path, '{"region": "eu-west-1"}', "b.tfvars.json")) == {"region": "eu-west-1"}
    with pytest.raises(ParameterError, match="cannot be read"):
        blueprint.read_tfvars(tmp_path / "missing.tfvars")


def test_runbook_run_takes_tfvars_and_refuses_before_anything_runs(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from eks_hub_runbook.cli import app

    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RUNBOOK_OUTPUTS_DIR", str(tmp_path / "outputs"))
    path = write(tmp_path, TYPE_3 + 'oauth_jupyter_client_secret = "s3cr3t-in-a-file"\nvpc_cidr = "10.1.0.0/21"\n')
    result = CliRunner().invoke(app, ["run", "--all", "--tfvars", str(path)])
    assert result.exit_code == 2
    assert "parameter 'oauth_jupyter_client_secret'" in result.output and "parameter 'vpc_cidr'" in result.output
    assert "s3cr3t-in-a-file" not in result.output
    # without them, the mapped parameters reach the notebooks' validation: --all still needs confirm
    result = CliRunner().invoke(app, ["run", "--all", "--tfvars", str(write(tmp_path, TYPE_3))])
    assert result.exit_code == 2 and "parameter 'confirm': 05_cleanup deletes the deployment" in result.output
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "state" / "deployments").exists()
