"""The hub release's objects as the sandbox builds them from the values (pure; the pods run in
test_hub_sandbox)."""

from __future__ import annotations

import base64

import yaml

from eks_hub_runbook.platform import hubconfig, values
from eks_hub_sandbox import hub_chart

SECRETS = hub_chart.secret_data({"hub": {}}, proxy_token="p" * 64, cookie_secret="c" * 64)


def _objects(params, outputs, **extra):
    rendered = hubconfig.effective_values(values.jupyterhub_values(params, outputs))
    return {(o["kind"], o["metadata"]["name"]): o for o in hub_chart.objects(rendered, host_port=31234, secrets=SECRETS,
                                                                              **extra)}


def test_services_are_the_charts_with_the_type_and_annotations_of_the_exposure(deployment_params, terraform_outputs):
    nlb = _objects(deployment_params["cognito"], terraform_outputs)
    public = nlb[("Service", "proxy-public")]
    assert public["spec"]["type"] == "LoadBalancer"
    assert public["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"
    assert public["metadata"]["annotations"][hub_chart.HOST_PORT_ANNOTATION] == "31234"
    assert [p["port"] for p in public["spec"]["ports"]] == [80, 443]
    assert public["spec"]["selector"] == {"component": "proxy", "release": "jupyterhub"}
    assert nlb[("Service", "hub")]["spec"]["ports"] == [{"name": "hub", "port": 8081, "targetPort": "http", "protocol": "TCP"}]
    assert nlb[("Service", "proxy-api")]["spec"]["ports"][0]["targetPort"] == "api"
    assert nlb[("PersistentVolumeClaim", "hub-db-dir")]["spec"]["storageClassName"] == "gp3"
    port_forward = _objects(deployment_params["dummy"], terraform_outputs)
    assert port_forward[("Service", "proxy-public")]["spec"]["type"] == "ClusterIP"


def test_hub_pod_mounts_config_secret_and_database_and_tolerates_core_nodes(deployment_params, terraform_outputs):
    objects = _objects(deployment_params["oauth"], terraform_outputs)
    deployment = objects[("Deployment", "hub")]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # the chart's: one writer of the sqlite file
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == f"quay.io/jupyterhub/k8s-hub:{hubconfig.CHART_VERSION}"
    assert container["args"][:3] == ["jupyterhub", "--config", "/usr/local/etc/jupyterhub/jupyterhub_config.py"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/srv/jupyterhub"]["name"] == "pvc" and container["workingDir"] == "/srv/jupyterhub"
    assert mounts["/usr/local/etc/jupyterhub/jupyterhub_config.py"]["subPath"] == "jupyterhub_config.py"
    assert {"name": "pvc", "persistentVolumeClaim": {"claimName": "hub-db-dir"}} in pod["volumes"]
    env = {e["name"]: e for e in container["env"]}
    assert env["OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "hub-oauth-client"  # never a value
    assert env["CONFIGPROXY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hub", "key": hub_chart.PROXY_TOKEN_KEY}
    assert {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "core", "effect": "NoSchedule"} in pod["tolerations"]
    preferred = pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert preferred["preference"]["matchExpressions"][0]["values"] == ["core"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/hub/health", "port": "http"}


def test_proxy_targets_the_hub_service_and_listens_on_its_pod_address(deployment_params, terraform_outputs):
    chp = _objects(deployment_params["dummy"], terraform_outputs)[("Deployment", "proxy")]["spec"]["template"]["spec"]
    command = chp["containers"][0]["command"]
    assert command[0] == "configurable-http-proxy"
    assert "--default-target=http://$(HUB_SERVICE_HOST):$(HUB_SERVICE_PORT)" in command
    assert "--ip=0.0.0.0" in command and "--port=8000" in command and "--api-port=8001" in command
    assert {p["name"]: p["containerPort"] for p in chp["containers"][0]["ports"]} == {"http": 8000, "api": 8001}


def test_a_change_of_values_changes_the_hub_template_and_the_secret_holds_the_values(deployment_params, terraform_outputs):
    def template_of(secrets):
        rendered = hubconfig.effective_values(values.jupyterhub_values(deployment_params["dummy"], terraform_outputs))
        objects = {(o["kind"], o["metadata"]["name"]): o for o in hub_chart.objects(rendered, host_port=1, secrets=secrets)}
        return objects, objects[("Deployment", "hub")]["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]

    objects, before = template_of(SECRETS)
    _, same = template_of(dict(SECRETS))
    _, after = template_of({**SECRETS, "values.yaml": "hub: {concurrentSpawnLimit: 1}\n"})
    assert before == same and before != after
    stored = {k: base64.b64decode(v).decode() for k, v in objects[("Secret", "hub")]["data"].items()}
    assert yaml.safe_load(stored["values.yaml"]) == {"hub": {}}
    assert set(stored) == {"values.yaml", hub_chart.PROXY_TOKEN_KEY, hub_chart.COOKIE_SECRET_KEY}


def test_an_in_memory_database_needs_no_claim(deployment_params, terraform_outputs):
    rendered = hubconfig.effective_values(values.jupyterhub_values(deployment_params["dummy"], terraform_outputs))
    rendered["hub"]["db"] = {"type": "sqlite-memory"}
    objects = {(o["kind"], o["metadata"]["name"]): o for o in hub_chart.objects(rendered, host_port=1, secrets=SECRETS)}
    assert ("PersistentVolumeClaim", "hub-db-dir") not in objects
    pod = objects[("Deployment", "hub")]["spec"]["template"]["spec"]
    assert all(v["name"] != "pvc" for v in pod["volumes"]) and "workingDir" not in pod["containers"][0]


def test_network_policies_are_the_charts_and_fence_user_servers_in(deployment_params, terraform_outputs):
    objects = _objects(deployment_params["dummy"], terraform_outputs)
    policies = {name: o["spec"] for (kind, name), o in objects.items() if kind == "NetworkPolicy"}
    assert set(policies) == {"hub", "proxy", "singleuser"}
    user = policies["singleuser"]
    assert user["podSelector"] == {"matchLabels": {"component": "singleuser-server", "release": "jupyterhub"}}
    assert user["policyTypes"] == ["Ingress", "Egress"]
    # reached on its port only by pods labelled for it: the proxy and the hub, never another user's pod
    assert user["ingress"] == [{"ports": [{"port": "notebook-port"}],
                                "from": [{"podSelector": {"matchLabels": {"hub.jupyter.org/network-access-singleuser": "true"}}}]}]
    labelled = {name for (kind, name), o in objects.items() if kind == "Deployment" and
                o["spec"]["template"]["metadata"]["labels"].get("hub.jupyter.org/network-access-singleuser") == "true"}
    assert labelled == {"hub", "proxy"}
    # egress: the hub, DNS, and public addresses except private ranges and the metadata server
    assert user["egress"][0] == {"ports": [{"port": 8081}], "to": [{"podSelector": {"matchLabels": {
        "component": "hub", "release": "jupyterhub"}}}]}
    [public] = [rule["to"][0]["ipBlock"] for rule in user["egress"]
                if "ports" not in rule and rule["to"][0].get("ipBlock", {}).get("cidr") == "0.0.0.0/0"]
    assert public["except"] == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.169.254/32"]
    assert all(rule.get("ports") for rule in user["egress"] if rule is not user["egress"][0] and
               rule["to"][0].get("ipBlock", {}).get("cidr", "").startswith(("10.", "172.16", "192.168")))
    # the hub's API only from labelled pods; the proxy's API only from the hub
    assert policies["hub"]["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"hub.jupyter.org/network-access-hub": "true"}}}]
    assert policies["proxy"]["ingress"][1]["from"] == [
        {"podSelector": {"matchLabels": {"hub.jupyter.org/network-access-proxy-api": "true"}}}]


def test_network_policies_follow_enabled_and_the_egress_allow_rules():
    values_ = hubconfig.effective_values({"singleuser": {"networkPolicy": {"egressAllowRules": {
        "privateIPs": True, "cloudMetadataServer": True}}}, "hub": {"networkPolicy": {"enabled": False}}})
    policies = {p["metadata"]["name"]: p["spec"] for p in hub_chart.network_policies(values_)}
    assert set(policies) == {"proxy", "singleuser"}
    assert {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]} in policies["singleuser"]["egress"]


def test_extra_config_runs_in_key_order_with_c_and_get_config():
    from traitlets.config import Config

    from eks_hub_sandbox import hub as sandbox_hub

    c = Config()
    extra = {"b-second": "c.JupyterHub.template_vars['order'].append('b')",
             "a-first": "c.JupyterHub.template_vars = {'order': [get_config('hub.baseUrl'), get_config('hub.nope', 'd')]}"}
    assert sandbox_hub.run_extra_config(c, {"hub": {"extraConfig": extra, "baseUrl": "/"}}) == ["a-first", "b-second"]
    assert c.JupyterHub.template_vars == {"order": ["/", "d", "b"]}
    assert sandbox_hub.run_extra_config(Config(), {"hub": {}}) == []


def test_the_platform_has_the_hub_poll_a_starting_server_at_most_a_second_apart(deployment_params, terraform_outputs):
    import subprocess
    import sys

    rendered = hubconfig.effective_values(values.jupyterhub_values(deployment_params["dummy"], terraform_outputs))
    snippet = rendered["hub"]["extraConfig"]["00-prompt-readiness"]
    check = ("import inspect, sys\nexec(sys.stdin.read())\nfrom jupyterhub.utils import exponential_backoff\n"
             "from kubespawner import spawner\n"
             "print(inspect.signature(exponential_backoff).parameters['max_wait'].default,"
             " inspect.signature(spawner.exponential_backoff).parameters['max_wait'].default)")
    before = subprocess.run([sys.executable, "-c", check], input="", capture_output=True, text=True, check=True)
    after = subprocess.run([sys.executable, "-c", check], input=snippet, capture_output=True, text=True, check=True)
    assert before.stdout.split() == ["5", "5"]  # JupyterHub's own: up to 5 s between checks
    assert after.stdout.split() == ["1.0", "1.0"]  # KubeSpawner's pod check and the hub's HTTP check


def test_the_hub_runs_the_packages_of_the_charts_hub_image():
    """The sandbox's hub is this virtualenv's JupyterHub: the packages it runs on are the versions
    z2jh 4.4.0's hub image pins. pycurl among them: with it JupyterHub's own HTTP requests (route
    adds to the proxy, polls of starting servers) queue in curl without timing out, where tornado's
    client fails a request queued 3 s (100 spawns at once lost route adds so)."""
    from importlib import metadata

    from eks_hub_runbook import third_party

    pins = dict(line.split("==", 1) for line in third_party.file(third_party.Z2JH, "requirements.txt").read_text()
                .splitlines() if "==" in line and not line.startswith("#"))
    for package in ("jupyterhub", "jupyterhub-kubespawner", "jupyterhub-idle-culler", "oauthenticator", "pycurl",
                    "tornado", "sqlalchemy"):
        assert metadata.version(package) == pins[package].split()[0], package
    from tornado.curl_httpclient import CurlAsyncHTTPClient  # what JupyterHub.init_pycurl configures

    assert CurlAsyncHTTPClient
