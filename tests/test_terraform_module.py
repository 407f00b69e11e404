"""The root module: formatted, valid, and bad input refused before anything exists."""

from __future__ import annotations

import json

import pytest

from eks_hub_runbook import params, paths, terraform
from eks_hub_runbook.aws import leftovers
from eks_hub_runbook.errors import ParameterError, TerraformError
from eks_hub_runbook.terraform.workspace import TFVARS_FILE

pytestmark = pytest.mark.terraform

BAD_DEPLOYMENT = "bad-inputs"


def test_module_is_formatted():
    assert terraform.fmt_check(paths.TERRAFORM_DIR) == []


def test_module_uses_only_the_aws_provider_and_no_registry_modules():
    text = "\n".join(p.read_text() for p in paths.TERRAFORM_DIR.glob("*.tf"))
    assert 'version = "~> 5.100"' in text
    for forbidden in ("hashicorp/random", "hashicorp/tls", "hashicorp/helm", "hashicorp/kubernetes", 'module "'):
        assert forbidden not in text
    assert "endpoints" not in text and "skip_credentials_validation" not in text, "sandbox settings belong in the override"


@pytest.fixture(scope="module")
def bad_workspace(aws_sandbox):
    return terraform.prepare(params.resolve(deployment=BAD_DEPLOYMENT))


def test_module_validates(bad_workspace):
    terraform.validate(bad_workspace)


# Invalid sets given to params.resolve (the notebooks' entry point): refused by name.
BAD_PARAMETERS = [
    ({"deployment": "Bad_Name"}, "deployment"),
    ({"region": "mars-north-1"}, "region"),
    ({"auth": "saml"}, "auth"),
    ({"auth": "dummy", "domain": "hub.example.com"}, "domain"),
    ({"auth": "cognito", "target": "aws"}, "domain"),
    ({"public_access_cidrs": "10.0.0.1/8"}, "public_access_cidrs"),
    ({"kubernetes_version": 1.3}, "kubernetes_version"),
    ({"auth": "cognito", "domain": "hub.example.com", "certificate_arn": "arn:aws:acm:nope"}, "certificate_arn"),
    ({"auth": "oauth", "target": "aws", "domain": "hub.example.com", "oauth_client_id": "hub"}, "oauth_domain"),
    ({"nat_gateway_mode": "double"}, "nat_gateway_mode"),
]


@pytest.mark.parametrize(("raw", "parameter"), BAD_PARAMETERS, ids=[p for _, p in BAD_PARAMETERS])
def test_bad_parameters_are_refused_by_name(raw, parameter):
    with pytest.raises(ParameterError) as error:
        params.resolve(deployment=raw.pop("deployment", BAD_DEPLOYMENT), **raw)
    assert error.value.parameter == parameter
    assert f"parameter '{parameter}'" in str(error.value) and "Fix:" in str(error.value)


# Invalid variable sets given straight to Terraform (e.g. a hand-edited tfvars): the
# module's own validation refuses them, naming the variable, before any resource exists.
BAD_VARIABLES = [
    ({"name": "Bad_Name"}, "name"),
    ({"jupyter_hub_auth_mechanism": "saml"}, "jupyter_hub_auth_mechanism"),
    ({"jupyterhub_domain": "hub.example.com"}, "jupyterhub_domain"),
    ({"jupyter_hub_auth_mechanism": "cognito", "acm_certificate_domain": "*.example.com"}, "jupyterhub_domain"),
    ({"jupyter_hub_auth_mechanism": "oauth", "jupyterhub_domain": "hub.example.com"}, "acm_certificate_domain"),
    ({"certificate_arn": "arn:aws:acm:us-west-2:123:certificate/x"}, "certificate_arn"),
    ({"public_access_cidrs": ["10.0.0.1/8"]}, "public_access_cidrs"),
    ({"kubernetes_version": "1.12"}, "kubernetes_version"),
    ({"core_node_desired_size": 9}, "core_node_desired_size"),
    ({"name": "hub-cognito", "jupyter_hub_auth_mechanism": "cognito", "jupyterhub_domain": "hub.example.com",
      "acm_certificate_domain": "*.example.com"}, "name"),
    ({"secondary_cidr": ""}, "pod_subnet_cidrs"),
    ({"tags": {"runbook:deployment": "other"}}, "tags"),
    ({"public_subnet_cidrs": ["10.1.2.0/26"]}, "public_subnet_cidrs"),
    ({"vpc_flow_logs": "on"}, "vpc_flow_logs"),
]


@pytest.mark.parametrize(("override", "variable"), BAD_VARIABLES, ids=[f"{v}-{i}" for i, (_, v) in enumerate(BAD_VARIABLES)])
def test_bad_variables_fail_before_any_resource_exists(bad_workspace, override, variable):
    tfvars = bad_workspace.directory / TFVARS_FILE
    good = terraform.render_variables(params.resolve(deployment=BAD_DEPLOYMENT))
    tfvars.write_text(json.dumps({**good, **override}))
    try:
        with pytest.raises(TerraformError) as error:
            terraform.plan(bad_workspace, log=None)
    finally:
        tfvars.write_text(json.dumps(good))
    message = str(error.value)
    assert f"Variable '{variable}'" in message, message
    assert "after 2 attempts" not in message and "after 3 attempts" not in message, "validation errors are not retried"
    assert terraform.state_list(bad_workspace) == []
    assert leftovers.scan(override.get("name", BAD_DEPLOYMENT), "sandbox", "us-west-2") == []
