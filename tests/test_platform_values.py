"""Helm values: one base + overlays, valid against the z2jh 4.4.0 chart schema for every
login method and exposure type, without the original blueprint's login defects (no allow rule,
so nobody may log in; the removed ``userdata_method`` / ``username_key`` options)."""

from __future__ import annotations

import json
import stat

import jsonschema
import pytest
import yaml

from eks_hub_runbook.errors import PlatformError
from eks_hub_runbook import third_party
from eks_hub_runbook.platform import hubconfig, templating, values

AUTHS = ("dummy", "cognito", "oauth")
EXPOSURES = ("port-forward", "nlb")

# Rendering registers secrets and writes values files: keep both in the session's state folder.
pytestmark = pytest.mark.usefixtures("state_dir")


@pytest.fixture(scope="module")
def chart_schema():
    return yaml.safe_load(third_party.file(third_party.Z2JH, "values.schema.yaml").read_text())


@pytest.fixture(scope="module")
def chart_defaults():
    return yaml.safe_load(third_party.file(third_party.Z2JH, "values.yaml").read_text())


def validate(chart_schema, chart_defaults, user_values):
    """What helm does before rendering: user values over chart defaults, checked against the schema."""
    merged = templating.deep_merge(chart_defaults, user_values)
    jsonschema.Draft7Validator(chart_schema).validate(merged)


def dummy_variables():
    """Any well-typed value for every placeholder the values files use."""
    return {
        "allowed_users": ["user-1"], "admin_users": [], "allow_all": False,
        "singleuser_service_account": "jupyterhub-singleuser", "oauth_client_id": "client",
        "oauth_callback_url": "https://hub.example.com/hub/oauth_callback",
        "authorize_url": "https://idp.example.com/authorize", "token_url": "https://idp.example.com/token",
        "userdata_url": "https://idp.example.com/userinfo", "username_claim": "preferred_username",
        "certificate_arn": "arn:aws:acm:us-west-2:123456789012:certificate/12345678-1234-1234-1234-123456789012",
        "domain": "hub.example.com", "cull_enabled": True, "cull_timeout": 3600, "cull_every": 300,
    }


@pytest.mark.parametrize("exposure", EXPOSURES)
@pytest.mark.parametrize("auth", AUTHS)
def test_every_overlay_combination_validates_against_the_chart_schema(auth, exposure, chart_schema, chart_defaults):
    merged = {}
    for path in values.jupyterhub_files(auth, exposure):
        merged = templating.deep_merge(merged, templating.substitute(templating.load_yaml(path), dummy_variables()))
    validate(chart_schema, chart_defaults, merged)


@pytest.mark.parametrize("auth", AUTHS)
def test_rendered_values_per_deployment_type_validate(auth, deployment_params, terraform_outputs, chart_schema,
                                                       chart_defaults, oauth_secret_env):
    rendered = values.jupyterhub_values(deployment_params[auth], terraform_outputs)
    validate(chart_schema, chart_defaults, rendered)
    assert not templating.placeholders(rendered), "every ${placeholder} is filled"


def test_schema_check_catches_a_bad_key(chart_schema, chart_defaults, deployment_params, terraform_outputs):
    rendered = values.jupyterhub_values(deployment_params["dummy"], terraform_outputs)
    rendered["singleuser"]["storage"]["staticc"] = {}
    with pytest.raises(jsonschema.ValidationError):
        validate(chart_schema, chart_defaults, rendered)


def test_overlays_only_hold_what_differs():
    """One base: overlays never redefine profiles, storage or the allow rule (no drifting copies)."""
    for path in sorted(values.JUPYTERHUB_VALUES_DIR.glob("*.yaml")):
        if path.name == "base.yaml":
            continue
        data = templating.load_yaml(path)
        assert "profileList" not in json.dumps(data) and "storage" not in json.dumps(data), path.name
        assert "Authenticator" not in (data.get("hub", {}).get("config", {})), path.name


def test_exposure_follows_deployment_type(deployment_params, terraform_outputs, oauth_secret_env):
    dummy = values.jupyterhub_values(deployment_params["dummy"], terraform_outputs)
    assert dummy["proxy"]["service"]["type"] == "ClusterIP"
    assert dummy["proxy"]["https"]["enabled"] is False
    assert "port-forward svc/proxy-public 8080:80 -n jupyterhub" in values.reach_instructions(deployment_params["dummy"])
    for auth in ("cognito", "oauth"):
        params = deployment_params[auth]
        proxy = values.jupyterhub_values(params, terraform_outputs)["proxy"]
        assert proxy["service"]["type"] == "LoadBalancer"
        annotations = proxy["service"]["annotations"]
        prefix = "service.beta.kubernetes.io/aws-load-balancer-"
        assert annotations[prefix + "ssl-cert"] == params.certificate_arn
        assert annotations[prefix + "ssl-ports"] == "https"
        assert annotations[prefix + "backend-protocol"] == "tcp"
        assert annotations[prefix + "type"] == "external"
        assert annotations[prefix + "nlb-target-type"] == "ip"
        assert annotations[prefix + "scheme"] == "internet-facing"
        assert proxy["https"] == {"enabled": True, "type": "offload", "hosts": ["hub.example.com"]}


def test_nlb_without_certificate_is_a_clear_error(terraform_outputs):
    from eks_hub_runbook import params

    cognito = params.resolve(target="aws", auth="cognito", domain="hub.example.com", deployment="no-cert-here")
    with pytest.raises(PlatformError, match="01_certificate"):
        values.jupyterhub_values(cognito, terraform_outputs)


def test_login_wiring(deployment_params, terraform_outputs, oauth_secret_env):
    dummy = values.jupyterhub_values(deployment_params["dummy"], terraform_outputs)["hub"]["config"]
    assert dummy["JupyterHub"]["authenticator_class"] == "dummy"

    cognito = values.jupyterhub_values(deployment_params["cognito"], terraform_outputs)["hub"]["config"]
    generic = cognito["GenericOAuthenticator"]
    assert cognito["JupyterHub"]["authenticator_class"] == "generic-oauth"
    assert generic["authorize_url"] == terraform_outputs["cognito_authorize_url"]
    assert generic["token_url"] == terraform_outputs["cognito_token_url"]
    assert generic["userdata_url"] == terraform_outputs["cognito_userinfo_url"]
    assert generic["client_id"] == terraform_outputs["cognito_client_id"]
    assert generic["oauth_callback_url"] == "https://hub.example.com/hub/oauth_callback"

    oauth = values.jupyterhub_values(deployment_params["oauth"], terraform_outputs)["hub"]["config"]["GenericOAuthenticator"]
    base = "https://keycloak.example.com/realms/jupyterhub/protocol/openid-connect"
    assert (oauth["authorize_url"], oauth["token_url"], oauth["userdata_url"]) == (f"{base}/auth", f"{base}/token", f"{base}/userinfo")
    assert oauth["username_claim"] == "preferred_username"
    assert oauth["client_id"] == "jupyterhub"


@pytest.mark.parametrize("auth", AUTHS)
def test_explicit_allow_rule_and_no_removed_options(auth, deployment_params, terraform_outputs, oauth_secret_env):
    """An explicit allow rule (without one OAuthenticator 16+ lets nobody in) and none of the removed
    options (``userdata_method``, ``username_key``): the blueprint shipped both mistakes."""
    rendered = values.jupyterhub_values(deployment_params[auth], terraform_outputs)
    allow = rendered["hub"]["config"]["Authenticator"]
    params = deployment_params[auth]
    assert allow["allowed_users"] == [params.login_name("user-1"), params.login_name("user-2")]
    assert allow["allow_all"] is False
    text = yaml.safe_dump(rendered)
    for removed in ("userdata_method", "username_key", "whitelist"):
        assert removed not in text


def test_allow_all_parameter_reaches_the_authenticator(terraform_outputs):
    from eks_hub_runbook import params

    p = params.resolve(target="aws", auth="cognito", domain="hub.example.com", allow_all=True, allowed_users="",
                       certificate_arn="arn:aws:acm:us-west-2:123456789012:certificate/12345678-1234-1234-1234-123456789012")
    allow = values.jupyterhub_values(p, terraform_outputs)["hub"]["config"]["Authenticator"]
    assert allow["allow_all"] is True and allow["allowed_users"] == []


@pytest.mark.parametrize("auth", ("cognito", "oauth"))
def test_client_secret_never_in_values(auth, deployment_params, terraform_outputs, oauth_secret_env, tmp_path):
    rendered = values.jupyterhub_values(deployment_params[auth], terraform_outputs)
    text = templating.dump(rendered)
    assert "cognito-client-secret-for-tests" not in text and oauth_secret_env not in text
    env = rendered["hub"]["extraEnv"]["OAUTH_CLIENT_SECRET"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": values.CLIENT_SECRET_NAME, "key": "client-secret"}
    written = values.write_values(rendered, tmp_path / "values.yaml")
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_hub_database_on_gp3(deployment_params, terraform_outputs):
    hub = values.jupyterhub_values(deployment_params["dummy"], terraform_outputs)["hub"]
    assert hub["db"]["type"] == "sqlite-pvc" and hub["db"]["pvc"]["storageClassName"] == "gp3"


def test_storage_home_per_user_and_shared_mount(deployment_params, terraform_outputs):
    storage = values.jupyterhub_values(deployment_params["dummy"], terraform_outputs)["singleuser"]["storage"]
    assert storage["type"] == "static" and storage["homeMountPath"] == "/home/jovyan"
    assert storage["static"] == {"pvcName": "efs-persist", "subPath": "{username}"}
    assert storage["extraVolumes"] == [{"name": "shared", "persistentVolumeClaim": {"claimName": "efs-persist-shared"}}]
    assert storage["extraVolumeMounts"] == [{"name": "shared", "mountPath": "/home/shared"}]


def test_missing_terraform_output_is_named(deployment_params, terraform_outputs):
    partial = {k: v for k, v in terraform_outputs.items() if k != "efs_shared_access_point_id"}
    with pytest.raises(PlatformError, match="efs_shared_access_point_id"):
        values.jupyterhub_values(deployment_params["dummy"], partial)


def test_sandbox_replaces_only_endpoints_and_callback(deployment_params, terraform_outputs):
    local = values.LoginEndpoints("http://127.0.0.1:9/oauth2/authorize", "http://127.0.0.1:9/oauth2/token",
                                  "http://127.0.0.1:9/userinfo")
    aws = values.jupyterhub_values(deployment_params["cognito"], terraform_outputs)
    sandbox = values.jupyterhub_values(deployment_params["cognito"], terraform_outputs,
                                       hub_url="http://127.0.0.1:8000", endpoints=local)
    changed = {k for k in aws["hub"]["config"]["GenericOAuthenticator"]
               if aws["hub"]["config"]["GenericOAuthenticator"][k] != sandbox["hub"]["config"]["GenericOAuthenticator"][k]}
    assert changed == {"authorize_url", "token_url", "userdata_url", "oauth_callback_url"}
    assert sandbox["hub"]["config"]["GenericOAuthenticator"]["oauth_callback_url"] == "http://127.0.0.1:8000/hub/oauth_callback"
    aws["hub"]["config"].pop("GenericOAuthenticator"), sandbox["hub"]["config"].pop("GenericOAuthenticator")
    assert aws == sandbox


def test_other_release_values_are_filled(deployment_params, terraform_outputs):
    karpenter = values.release_values("helm-values/karpenter.yaml", deployment_params["dummy"], terraform_outputs)
    settings = karpenter["settings"]
    assert (settings["clusterName"], settings["interruptionQueue"]) == ("jupyterhub-on-eks", "jupyterhub-on-eks-karpenter")


def test_hub_translation_applies_hub_config(deployment_params, terraform_outputs, oauth_secret_env):
    rendered = hubconfig.effective_values(values.jupyterhub_values(deployment_params["oauth"], terraform_outputs))
    c = hubconfig.hub_config(rendered)
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert c.GenericOAuthenticator.username_claim == "preferred_username"
    assert c.Authenticator.allowed_users == ["user-1", "user-2"]
    assert c.KubeSpawner.service_account == "jupyterhub-singleuser"
    env = {item["name"]: item for item in hubconfig.hub_env_vars(rendered)}
    assert env["OAUTH_CLIENT_SECRET"]["valueFrom"] == {"secretKeyRef": {"name": "hub-oauth-client", "key": "client-secret"}}
    assert "value" not in env["OAUTH_CLIENT_SECRET"]


# --------------------------------------------------------------------------- idle culler, do-not-disrupt


@pytest.mark.parametrize(("minutes", "expected"), [
    (60, {"enabled": True, "timeout": 3600, "every": 300}),  # the default: every capped at 5 minutes
    (5, {"enabled": True, "timeout": 300, "every": 150}),
    (0.1, {"enabled": True, "timeout": 6, "every": 3}),  # the sandbox demo's shortest
    (0.005, {"enabled": True, "timeout": 1, "every": 1}),  # never below one second (0.3 s)
])
def test_cull_block_follows_the_cull_timeout_parameter(minutes, expected, terraform_outputs, chart_schema,
                                                       chart_defaults):
    import dataclasses

    from eks_hub_runbook.params import resolve

    p = resolve(target="aws", cull_timeout_minutes=max(minutes, 0.1))
    if minutes < 0.1:  # below the parameter's range: the arithmetic alone
        p = dataclasses.replace(p, cull_timeout_minutes=minutes)
    rendered = values.jupyterhub_values(p, terraform_outputs)
    validate(chart_schema, chart_defaults, rendered)
    assert {k: rendered["cull"][k] for k in expected} == expected
    assert rendered["cull"]["users"] is False and rendered["cull"]["maxAge"] == 0


def test_cull_timeout_zero_turns_the_culler_off(terraform_outputs, chart_schema, chart_defaults):
    from eks_hub_runbook.params import resolve

    rendered = values.jupyterhub_values(resolve(target="aws", cull_timeout_minutes=0), terraform_outputs)
    validate(chart_schema, chart_defaults, rendered)
    effective = hubconfig.effective_values(rendered)
    assert effective["cull"]["enabled"] is False
    assert hubconfig.idle_culler(effective) is None
    assert hubconfig.hub_config(effective).JupyterHub.services == []


def test_culler_service_is_the_charts(deployment_params, terraform_outputs):
    """z2jh's jupyterhub_config.py: python3 -m jupyterhub_idle_culler with the cull block's
    flags, as the hub service jupyterhub-idle-culler with a role of just the scopes it needs."""
    effective = hubconfig.effective_values(values.jupyterhub_values(deployment_params["dummy"], terraform_outputs))
    c = hubconfig.hub_config(effective)
    [service] = c.JupyterHub.services
    assert service == {"name": "jupyterhub-idle-culler", "command": [
        "python3", "-m", "jupyterhub_idle_culler", "--url=http://localhost:8081/hub/api",
        "--timeout=3600", "--cull-every=300", "--concurrency=10"]}
    assert c.JupyterHub.load_roles == [{"name": "jupyterhub-idle-culler", "services": ["jupyterhub-idle-culler"],
                                        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]}]
    # every other flag of the block, and the URL of a hub under a base URL, listening elsewhere
    effective["cull"].update(users=True, adminUsers=False, removeNamedServers=True, maxAge=86400, concurrency=0)
    effective["hub"]["baseUrl"] = "/jupyter/"
    service, role = hubconfig.idle_culler(effective, hub_url="http://10.1.2.3:8081/")
    assert service["command"][3:] == ["--url=http://10.1.2.3:8081/jupyter/hub/api", "--timeout=3600", "--cull-every=300",
                                      "--cull-users", "--cull-admin-users=false", "--remove-named-servers",
                                      "--max-age=86400"]
    assert role["scopes"][-1] == "admin:users"


def test_user_pods_carry_do_not_disrupt(deployment_params, terraform_outputs, offline_kubespawner):
    """Every profile's pod, as KubeSpawner builds it from the values, asks Karpenter not to disrupt its node."""
    from tests.test_platform_profiles import build_pod, profile_cases

    rendered = hubconfig.effective_values(values.jupyterhub_values(deployment_params["dummy"], terraform_outputs))
    assert rendered["singleuser"]["extraAnnotations"] == {"karpenter.sh/do-not-disrupt": "true"}
    for slug, options in profile_cases(rendered):
        pod = build_pod(offline_kubespawner, rendered, options)
        assert pod["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true", slug


def test_user_servers_are_fenced_in_for_every_profile(deployment_params, terraform_outputs, offline_kubespawner):
    """No instance metadata (iptables init container + network policy), no Kubernetes API token,
    no other users' servers (the chart's network policies): in the values and in every
    profile's pod as KubeSpawner builds it with the hub's whole configuration."""
    from kubernetes.client import ApiClient
    from types import SimpleNamespace
    import asyncio

    from tests.test_platform_profiles import profile_cases

    rendered = hubconfig.effective_values(values.jupyterhub_values(deployment_params["dummy"], terraform_outputs))
    user = rendered["singleuser"]
    assert user["cloudMetadata"]["blockWithIptables"] is True
    assert user["networkPolicy"]["enabled"] and rendered["hub"]["networkPolicy"]["enabled"]
    assert rendered["proxy"]["chp"]["networkPolicy"]["enabled"]
    allow = user["networkPolicy"]["egressAllowRules"]
    assert allow["cloudMetadataServer"] is False and allow["privateIPs"] is False
    config = hubconfig.hub_config(rendered)
    assert config.KubeSpawner.automount_service_account_token is False

    async def pod(options):
        spawner = offline_kubespawner(config=config, _mock=True, user=SimpleNamespace(name="user-1", id=1, url="/user/user-1/"))
        spawner.user_options = options
        await spawner.load_user_options()
        return ApiClient().sanitize_for_serialization(await spawner.get_pod_manifest())

    cases = list(profile_cases(rendered))
    assert len(cases) >= len(user["profileList"])
    for slug, options in cases:
        spec = asyncio.run(pod(options))["spec"]
        assert spec["automountServiceAccountToken"] is False, slug
        assert spec["serviceAccountName"] == terraform_outputs["singleuser_service_account"], slug  # pod identity
        [block] = [c for c in spec["initContainers"] if c["name"] == "block-cloud-metadata"]
        assert block["command"][-6:] == ["--destination", "169.254.169.254", "--destination-port", "80", "--jump", "DROP"]
        assert block["image"] == f"quay.io/jupyterhub/k8s-network-tools:{hubconfig.CHART_VERSION}"
        assert block["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"]
        assert all(c["securityContext"]["allowPrivilegeEscalation"] is False for c in spec["containers"]), slug


def test_load_balancer_controller_gets_region_and_vpc_from_values(deployment_params, terraform_outputs):
    """Hop limit 1 keeps pods from the metadata service, where the controllers would otherwise look."""
    lbc = values.release_values("helm-values/aws-load-balancer-controller.yaml", deployment_params["dummy"], terraform_outputs)
    assert (lbc["region"], lbc["vpcId"]) == ("us-west-2", terraform_outputs["vpc_id"])
    karpenter = values.release_values("helm-values/karpenter.yaml", deployment_params["dummy"], terraform_outputs)
    assert {"name": "AWS_REGION", "value": "us-west-2"} in karpenter["controller"]["env"]
