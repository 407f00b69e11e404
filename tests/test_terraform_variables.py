"""Rendering Terraform variables and the per-deployment working directory."""

from __future__ import annotations

import json

import pytest

from eks_hub_runbook import params, paths
from eks_hub_runbook.errors import ParameterError
from eks_hub_runbook.terraform import prepare, render_variables, secret_environment
from eks_hub_runbook.terraform.workspace import OVERRIDE_FILE, TFVARS_FILE

ARN = "arn:aws:acm:us-west-2:123456789012:certificate/0b7e7a32-1d8c-4d1b-9a4e-123456789abc"


def test_type_1_passes_no_domain_or_certificate():
    variables = render_variables(params.resolve(target="aws"))
    assert variables == {
        "name": "jupyterhub-on-eks",
        "region": "us-west-2",
        "jupyter_hub_auth_mechanism": "dummy",
        "kubernetes_version": "1.33",
        "public_access_cidrs": ["0.0.0.0/0"],
        "nat_gateway_mode": "single",
        "jupyterhub_domain": "",
        "acm_certificate_domain": "",
        "certificate_arn": "",
    }


def test_type_2_passes_domain_certificate_domain_and_arn():
    p = params.resolve(target="aws", auth="cognito", domain="hub.example.com", deployment="hub-two", nat_gateway_mode="per-az",
                       public_access_cidrs="203.0.113.0/24,198.51.100.0/24")
    variables = render_variables(p, certificate_arn=ARN)
    assert variables["jupyter_hub_auth_mechanism"] == "cognito"
    assert variables["jupyterhub_domain"] == "hub.example.com"
    assert variables["acm_certificate_domain"] == "*.example.com"
    assert variables["certificate_arn"] == ARN
    assert variables["nat_gateway_mode"] == "per-az"
    assert variables["public_access_cidrs"] == ["203.0.113.0/24", "198.51.100.0/24"]


def test_type_3_without_arn_looks_the_certificate_up_by_domain():
    p = params.resolve(target="aws", auth="oauth", domain="hub.example.org", oauth_domain="keycloak.example.org", oauth_client_id="hub")
    variables = render_variables(p)
    assert variables["certificate_arn"] == "" and variables["acm_certificate_domain"] == "*.example.org"


def test_certificate_arn_with_dummy_login_is_refused():
    with pytest.raises(ParameterError, match="certificate_arn"):
        render_variables(params.resolve(target="aws"), certificate_arn=ARN)


def test_secrets_go_to_tf_var_environment_only():
    assert secret_environment({}) == {}
    with pytest.raises(ValueError, match="not a secret variable"):
        secret_environment({"oauth_client_secret": "s3cret"})


@pytest.mark.sandbox
def test_workspace_links_the_module_and_generates_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path))
    p = params.resolve(deployment="ws-test", auth="cognito", domain="hub.example.com")
    ws = prepare(p, certificate_arn=ARN)
    assert ws.directory == tmp_path / "deployments" / "ws-test" / "terraform-sandbox"
    linked = sorted(f.name for f in ws.directory.glob("*.tf") if f.is_symlink())
    assert linked == sorted(f.name for f in paths.TERRAFORM_DIR.glob("*.tf") if not f.name.endswith("_override.tf"))
    assert (ws.directory / OVERRIDE_FILE).is_file() and not (ws.directory / OVERRIDE_FILE).is_symlink()
    assert not (paths.TERRAFORM_DIR / OVERRIDE_FILE).exists(), "sandbox settings must never land in the module"
    tfvars = json.loads((ws.directory / TFVARS_FILE).read_text())
    assert tfvars["certificate_arn"] == ARN
    config = ws.cli_config.read_text()
    assert "plugin_cache_dir" in config
    env = ws.env()
    assert env["TF_CLI_CONFIG_FILE"] == str(ws.cli_config) and env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")

    # The same deployment on AWS gets its own directory and state, and no override.
    aws_ws = prepare(params.resolve(deployment="ws-test", target="aws"))
    assert aws_ws.directory != ws.directory and not (aws_ws.directory / OVERRIDE_FILE).exists()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert "AWS_ENDPOINT_URL" not in aws_ws.env()


def test_workspace_drops_links_to_removed_module_files(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    module = tmp_path / "module"
    module.mkdir()
    (module / "a.tf").write_text("")
    (module / "b.tf").write_text("")
    ws = prepare(params.resolve(deployment="ws-links", target="aws"), module_dir=module)
    (module / "b.tf").unlink()
    prepare(params.resolve(deployment="ws-links", target="aws"), module_dir=module)
    assert sorted(f.name for f in ws.directory.glob("*.tf")) == ["a.tf"]


def test_kubernetes_versions_are_the_same_in_the_parameters_and_the_module():
    """params.KUBERNETES_VERSIONS and the module's validation and default of kubernetes_version."""
    import re

    text = (paths.TERRAFORM_DIR / "variables.tf").read_text()
    block = text[text.index('variable "kubernetes_version"'):]
    block = block[: block.index("\n}\n")]
    allowed = re.search(r"contains\(\[([^\]]*)\], var\.kubernetes_version\)", block).group(1)
    assert tuple(re.findall(r'"([\d.]+)"', allowed)) == params.KUBERNETES_VERSIONS
    default = re.search(r'default\s*=\s*"([\d.]+)"', block).group(1)
    assert default == params.DeploymentParameters.kubernetes_version
