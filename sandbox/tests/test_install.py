"""The sandbox's platform install: the chart's objects it mirrors (the rest runs in test_hub_sandbox)."""

from __future__ import annotations

from eks_hub_runbook.platform import values
from eks_hub_sandbox import install


def test_chart_objects_mirror_proxy_public_and_hub_db(deployment_params, terraform_outputs):
    nlb = install.chart_objects(values.jupyterhub_values(deployment_params["cognito"], terraform_outputs))
    service = next(o for o in nlb if o["kind"] == "Service")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"
    assert [p["port"] for p in service["spec"]["ports"]] == [80, 443]
    db = next(o for o in nlb if o["kind"] == "PersistentVolumeClaim")
    assert db["spec"]["storageClassName"] == "gp3"
    cluster_ip = install.chart_objects(values.jupyterhub_values(deployment_params["dummy"], terraform_outputs))
    assert cluster_ip[0]["spec"]["type"] == "ClusterIP"
