"""Parameter rules: conversion of papermill-coerced values and one clear error per bad input.

The rules are the same on every target, so they are checked with ``target="aws"`` (which needs
no stand-in installed); what the sandbox target fills in is checked where marked ``sandbox``."""

from __future__ import annotations

import pytest

from eks_hub_runbook import params, targets
from eks_hub_runbook.errors import ParameterError, ParameterErrors

COGNITO = {"auth": "cognito", "domain": "hub.example.com"}
OAUTH = {"auth": "oauth", "domain": "hub.example.com", "oauth_domain": "keycloak.example.com", "oauth_client_id": "jupyterhub"}


def resolve(**raw):
    """``params.resolve`` on AWS unless the case names its target."""
    return params.resolve(**{"target": "aws", **raw})


@pytest.mark.sandbox
def test_defaults_are_a_type_1_sandbox_deployment():
    p = params.resolve()
    assert (p.target, p.auth, p.deployment_type, p.domain) == ("sandbox", "dummy", 1, "")
    assert p.allowed_users == ("user-1", "user-2")


def test_cognito_derives_a_wildcard_certificate_domain_and_callback():
    p = resolve(**COGNITO)
    assert p.deployment_type == 2
    assert p.certificate_domain == "*.example.com"
    assert p.hub_callback_url == "https://hub.example.com/hub/oauth_callback"


def test_cognito_users_are_email_addresses_at_the_hub_domain():
    p = resolve(**COGNITO, allowed_users="user-1,ops@corp.example")
    assert p.allowed_users == ("user-1@example.com", "ops@corp.example")
    assert p.login_name("user-2") == "user-2@example.com"
    assert resolve().login_name("user-2") == "user-2"


def test_papermill_coerced_values_are_converted():
    p = resolve(allow_all="True", allowed_users="a,b ,", kubernetes_version="1.32", public_access_cidrs=["10.0.0.0/8"], auth="DUMMY")
    assert p.allow_all is True and p.allowed_users == ("a", "b") and p.auth == "dummy"


@pytest.mark.parametrize(
    ("raw", "parameter", "hint"),
    [
        ({"auth": "ldap"}, "auth", "dummy, cognito, oauth"),
        ({"target": "gcp"}, "target", "use one of:"),
        ({"region": "us-west-9"}, "region", "us-west-2"),
        ({"deployment": "Bad_Name"}, "deployment", "lowercase"),
        ({"deployment": 7}, "deployment", "lowercase"),
        ({"auth": "cognito", "target": "aws"}, "domain", "-p domain"),
        ({"auth": "dummy", "domain": "hub.example.com"}, "domain", "type 1"),
        ({**COGNITO, "domain": "hub_example"}, "domain", "fully qualified"),
        ({**COGNITO, "domain": "*.example.com"}, "domain", "wildcard"),
        ({**COGNITO, "certificate_domain": "*.other.org"}, "certificate_domain", "does not cover"),
        ({**COGNITO, "certificate_arn": "arn:aws:iam::1:role/x"}, "certificate_arn", "ACM certificate ARN"),
        ({**COGNITO, "allowed_users": ""}, "allowed_users", "nobody could log in"),
        ({**OAUTH, "target": "aws", "oauth_client_id": ""}, "oauth_client_id", "client id"),
        ({**OAUTH, "target": "aws", "oauth_domain": ""}, "oauth_domain", "identity provider"),
        ({"kubernetes_version": 1.3}, "kubernetes_version", "quote it"),
        ({"public_access_cidrs": "10.0.0.1/8"}, "public_access_cidrs", "CIDR"),
        ({"nat_gateway_mode": "none"}, "nat_gateway_mode", "single, per-az"),
        ({"allow_all": "maybe"}, "allow_all", "True or False"),
        ({"admin_users": "Root User"}, "admin_users", "user name"),
        ({"regoin": "us-west-2"}, "regoin", "not a deployment parameter"),
        ({**COGNITO, "deployment": "aws-hub"}, "deployment", "Cognito forbids"),
        ({"profiles": "gpu-x"}, "profiles", "'gpu-x' is not a profile of the hub"),
        ({"profiles": ["elyra", "gpu-x", "tpu"]}, "profiles", "'gpu-x', 'tpu' are not profiles"),
        ({"gpu_spot": "sometimes"}, "gpu_spot", "True or False"),
        ({"cull_timeout_minutes": -1}, "cull_timeout_minutes", "out of range"),
        ({"cull_timeout_minutes": "soon"}, "cull_timeout_minutes", "not a number of minutes"),
    ],
)
def test_bad_input_names_the_parameter_and_the_fix(raw, parameter, hint):
    with pytest.raises(ParameterError) as error:
        resolve(**raw)
    assert error.value.parameter == parameter
    assert hint in str(error.value)
    assert str(error.value).startswith(f"parameter '{parameter}'") and "Fix:" in str(error.value)


@pytest.mark.parametrize(
    ("certificate", "host", "expected"),
    [("*.example.com", "hub.example.com", True), ("*.example.com", "a.b.example.com", False),
     ("hub.example.com", "hub.example.com", True), ("*.example.com", "example.com", False)],
)
def test_certificate_coverage(certificate, host, expected):
    assert params.covers(certificate, host) is expected


def test_a_float_version_that_round_trips_is_accepted():
    assert resolve(kubernetes_version=1.33).kubernetes_version == "1.33"


def test_secrets_come_from_the_environment_only(monkeypatch):
    monkeypatch.delenv("RUNBOOK_OAUTH_CLIENT_SECRET", raising=False)
    with pytest.raises(ParameterError, match="RUNBOOK_OAUTH_CLIENT_SECRET"):
        params.secret("oauth_client_secret")
    monkeypatch.setenv("RUNBOOK_OAUTH_CLIENT_SECRET", "s3cr3t-value")
    assert params.secret("oauth_client_secret") == "s3cr3t-value"
    assert "oauth_client_secret" not in params.parameter_names()


@pytest.mark.sandbox
def test_every_login_method_works_on_the_sandbox_with_no_other_parameter():
    cognito = params.resolve(auth="cognito")
    assert (cognito.domain, cognito.certificate_domain, cognito.defaulted) == ("hub.example.com", "*.example.com", ("domain",))
    oauth = params.resolve(auth="oauth")
    assert (oauth.domain, oauth.oauth_domain, oauth.oauth_client_id) == ("hub.example.com", "keycloak.example.com", "jupyterhub")
    assert set(oauth.defaulted) == {"domain", "oauth_domain", "oauth_client_id"}
    assert "defaulted" not in oauth.as_dict() and "defaulted" not in params.parameter_names()
    given = params.resolve(auth="oauth", domain="jupyter.example.org", oauth_client_id="hub")
    assert given.defaulted == ("oauth_domain",) and given.domain == "jupyter.example.org"


@pytest.mark.parametrize("auth", ["cognito", "oauth"])
def test_on_aws_the_login_method_still_needs_its_names(auth):
    with pytest.raises(ParameterError) as error:
        resolve(target="aws", auth=auth)
    names = {e.parameter for e in error.value.errors}
    assert names == ({"domain"} if auth == "cognito" else {"domain", "oauth_domain", "oauth_client_id"})


def test_every_bad_parameter_is_reported_at_once():
    with pytest.raises(ParameterErrors) as error:
        resolve(target="gcp", region="mars-1", allow_all="maybe", public_access_cidrs="10.0.0.1/8",
                       kubernetes_version="1.20", deployment="Bad_Name")
    assert error.value.parameters == ["target", "deployment", "region", "kubernetes_version", "public_access_cidrs", "allow_all"]
    lines = str(error.value).splitlines()
    assert lines[0] == "6 parameters are invalid:"
    assert all(line.startswith("parameter '") and "Fix:" in line for line in lines[1:])
    known = ", ".join(targets.names())
    assert error.value.rows()[0] == {"parameter": "target", "problem": f"'gcp' is not one of {known}",
                                     "fix": f"use one of: {known}"}


@pytest.mark.parametrize(("blueprint", "runbook"), sorted(params.BLUEPRINT_NAMES.items()))
def test_a_blueprint_name_says_which_parameter_it_is(blueprint, runbook):
    with pytest.raises(ParameterError) as error:
        resolve(**{blueprint: "x"})
    assert error.value.parameter == blueprint
    assert f"`{runbook}`" in error.value.problem and f"-p {runbook}" in error.value.fix


def test_the_blueprint_client_secret_is_named_a_secret():
    error = params.unknown_parameter("oauth_jupyter_client_secret", params.parameter_names())
    assert "secret" in error.problem and "RUNBOOK_OAUTH_CLIENT_SECRET" in error.fix and "--secrets-file" in error.fix


def test_a_misspelt_name_gets_the_nearest_parameter_and_a_module_variable_is_refused():
    assert params.unknown_parameter("domian", ["domain", "auth"]).fix == "did you mean `domain`?"
    vpc = params.unknown_parameter("vpc_cidr", params.parameter_names())
    assert "Terraform module" in vpc.problem and "vpc_cidr" in params.module_variables()
    other = params.unknown_parameter("colour", ["domain", "auth"], "a parameter of 03_verify")
    assert other.problem == "is not a parameter of 03_verify" and other.fix == "use one of: auth, domain"


def test_profiles_are_the_hubs_own_slugs_read_from_its_values():
    from eks_hub_runbook.platform import facts

    assert params.profile_slugs() == tuple(p["slug"] for p in facts.profile_list())
    assert resolve(profiles="gpu-time-slicing, elyra").profiles == ("gpu-time-slicing", "elyra")
    with pytest.raises(ParameterError) as error:
        resolve(profiles="gpu-x")
    assert all(slug in error.value.fix for slug in params.profile_slugs())
