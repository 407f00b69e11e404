"""Plain manifests: valid for the Kubernetes API and the real Karpenter v1.14.1 CRDs, wired to
the Terraform outputs (EFS access points, node role, service account), and the pinned plan."""

from __future__ import annotations

import base64
import re

import jsonschema
import kubernetes_validate
import pytest
import yaml

from eks_hub_runbook import third_party
from eks_hub_runbook.platform import charts, manifests, values

KUBERNETES_VERSION = "1.33.0"
CRD_FILES = {
    ("karpenter.sh/v1", "NodePool"): "karpenter.sh_nodepools.yaml",
    ("karpenter.sh/v1", "NodeClaim"): "karpenter.sh_nodeclaims.yaml",
    ("karpenter.k8s.aws/v1", "EC2NodeClass"): "karpenter.k8s.aws_ec2nodeclasses.yaml",
    ("karpenter.sh/v1alpha1", "NodeOverlay"): "karpenter.sh_nodeoverlays.yaml",
}

# Rendering registers secrets and writes values files: keep both in the session's state folder.
pytestmark = pytest.mark.usefixtures("state_dir")


@pytest.fixture(scope="module")
def crd_schemas():
    """openAPIV3Schema of each Karpenter kind, from the real CRDs read in place."""
    schemas = {}
    for (api_version, kind), name in CRD_FILES.items():
        crd = yaml.safe_load(third_party.file(third_party.KARPENTER, name).read_text())
        group = crd["spec"]["group"]
        for version in crd["spec"]["versions"]:
            if f"{group}/{version['name']}" == api_version:
                schemas[(api_version, kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


@pytest.fixture
def rendered(deployment_params, terraform_outputs):
    return manifests.render(deployment_params["dummy"], terraform_outputs)


def all_objects(rendered):
    return [obj for objs in rendered.values() for obj in objs]


def by_name(rendered, kind, name):
    matches = [o for o in all_objects(rendered) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}"
    return matches[0]


def test_core_objects_pass_kubernetes_schema_validation(rendered):
    core = [o for o in all_objects(rendered) if (o["apiVersion"], o["kind"]) not in CRD_FILES]
    assert {o["kind"] for o in core} >= {"Namespace", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
                                          "ServiceAccount", "ConfigMap"}
    for obj in core:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_karpenter_objects_validate_against_the_real_crds(rendered, crd_schemas):
    custom = [o for o in all_objects(rendered) if (o["apiVersion"], o["kind"]) in CRD_FILES]
    assert {o["kind"] for o in custom} == {"NodePool", "EC2NodeClass", "NodeOverlay"}
    for obj in custom:
        jsonschema.Draft7Validator(crd_schemas[(obj["apiVersion"], obj["kind"])]).validate(obj)
        if obj["kind"] == "EC2NodeClass":
            # CEL rule of the CRD (not evaluated by jsonschema): exactly one of role / instanceProfile
            assert ("role" in obj["spec"]) != ("instanceProfile" in obj["spec"])


def test_crd_validation_rejects_a_broken_nodepool(rendered, crd_schemas):
    pool = by_name(rendered, "NodePool", "gpu-ts")
    pool["spec"]["disruption"]["consolidationPolicy"] = "WhenIdle"  # the v1beta1 spelling, gone in v1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(crd_schemas[("karpenter.sh/v1", "NodePool")]).validate(pool)


def test_expected_nodepools_and_their_node_classes(rendered):
    pools = {o["metadata"]["name"]: o for o in all_objects(rendered) if o["kind"] == "NodePool"}
    classes = {o["metadata"]["name"] for o in all_objects(rendered) if o["kind"] == "EC2NodeClass"}
    assert set(pools) == {"cpu", "gpu-ts", "gpu-mig", "gpu-p4d", "trn1", "inf2"}
    for name, pool in pools.items():
        assert pool["spec"]["template"]["spec"]["nodeClassRef"]["name"] in classes
        assert pool["spec"]["template"]["metadata"]["labels"]["node-pool"] == name
        assert pool["spec"]["disruption"]["consolidationPolicy"] == "WhenEmpty"
    families = {name: {t.split(".")[0] for r in pool["spec"]["template"]["spec"]["requirements"]
                       if r["key"] == "node.kubernetes.io/instance-type" for t in r["values"]}
                for name, pool in pools.items()}
    assert families == {"cpu": {"m5"}, "gpu-ts": {"g5"}, "gpu-mig": {"p4d"}, "gpu-p4d": {"p4d"},
                        "trn1": {"trn1"}, "inf2": {"inf2"}}


def test_node_classes_use_terraform_role_and_discovery_tags(rendered, terraform_outputs):
    for obj in all_objects(rendered):
        if obj["kind"] == "EC2NodeClass":
            assert obj["spec"]["role"] == terraform_outputs["karpenter_node_role_name"]
            assert obj["spec"]["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "jupyterhub-on-eks"}}]
            assert obj["spec"]["securityGroupSelectorTerms"] == [{"tags": {"aws:eks:cluster-name": "jupyterhub-on-eks"}}]
            assert obj["spec"]["metadataOptions"]["httpPutResponseHopLimit"] == 1


def test_efs_volumes_map_home_and_shared_to_their_own_access_points(rendered, terraform_outputs):
    """The shared volume is the shared access point, never the file-system root (the blueprint's exposed every home)."""
    fs = terraform_outputs["efs_file_system_id"]
    home = by_name(rendered, "PersistentVolume", "efs-persist")["spec"]
    shared = by_name(rendered, "PersistentVolume", "efs-persist-shared")["spec"]
    assert home["csi"]["volumeHandle"] == f"{fs}::{terraform_outputs['efs_home_access_point_id']}"
    assert shared["csi"]["volumeHandle"] == f"{fs}::{terraform_outputs['efs_shared_access_point_id']}"
    assert re.fullmatch(r"fs-[0-9a-f]+::fsap-[0-9a-f]+", shared["csi"]["volumeHandle"])
    for name in ("efs-persist", "efs-persist-shared"):
        claim = by_name(rendered, "PersistentVolumeClaim", name)
        assert claim["metadata"]["namespace"] == "jupyterhub"
        assert claim["spec"]["volumeName"] == name and claim["spec"]["accessModes"] == ["ReadWriteMany"]
        assert claim["spec"]["storageClassName"] == "efs-sc"
        assert by_name(rendered, "PersistentVolume", name)["spec"]["storageClassName"] == "efs-sc"


def test_gp3_is_the_only_default_storage_class(rendered):
    classes = [o for o in all_objects(rendered) if o["kind"] == "StorageClass"]
    defaults = [c["metadata"]["name"] for c in classes
                if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"]
    assert defaults == ["gp3"]
    assert by_name(rendered, "StorageClass", "gp3")["parameters"]["type"] == "gp3"
    assert by_name(rendered, "StorageClass", "efs-sc")["provisioner"] == "efs.csi.aws.com"


def test_singleuser_service_account_matches_terraform(deployment_params, terraform_outputs):
    """The service account the IAM role trusts (the blueprint's trusted another name) is the one created and the one user pods use."""
    custom = {**terraform_outputs, "singleuser_service_account": "notebook-users", "singleuser_namespace": "jupyterhub"}
    rendered = manifests.render(deployment_params["dummy"], custom)
    account = by_name(rendered, "ServiceAccount", "notebook-users")
    assert account["metadata"]["namespace"] == "jupyterhub"
    hub_values = values.jupyterhub_values(deployment_params["dummy"], custom)
    assert hub_values["singleuser"]["serviceAccountName"] == "notebook-users"


def test_device_plugin_config_time_slicing_4_and_mig_mixed(rendered, deployment_params, terraform_outputs):
    config_map = by_name(rendered, "ConfigMap", "nvidia-device-plugin-config")
    plugin = values.release_values("helm-values/nvidia-device-plugin.yaml", deployment_params["dummy"], terraform_outputs)
    assert plugin["config"]["name"] == config_map["metadata"]["name"]
    assert plugin["config"]["default"] in config_map["data"]
    default = yaml.safe_load(config_map["data"][plugin["config"]["default"]])
    assert default["flags"]["migStrategy"] == "none"
    assert default["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]
    assert yaml.safe_load(config_map["data"]["mig-mixed"])["flags"]["migStrategy"] == "mixed"
    for pool in (o for o in all_objects(rendered) if o["kind"] == "NodePool"):
        config = pool["spec"]["template"]["metadata"]["labels"].get("nvidia.com/device-plugin.config")
        assert config is None or config in config_map["data"], pool["metadata"]["name"]
    assert config_map["metadata"]["namespace"] == charts.release("nvidia-device-plugin").namespace


def test_oauth_secret_object_only_for_oauth_logins(deployment_params, terraform_outputs, oauth_secret_env):
    assert manifests.oauth_client_secret(deployment_params["dummy"], terraform_outputs) is None
    secret = manifests.oauth_client_secret(deployment_params["oauth"], terraform_outputs)
    kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
    assert base64.b64decode(secret["data"]["client-secret"]).decode() == oauth_secret_env
    assert secret["metadata"] == {"name": values.CLIENT_SECRET_NAME, "namespace": "jupyterhub"}


def test_apply_order_puts_namespaces_first(rendered):
    kinds = [o["kind"] for o in rendered["base"]]
    assert kinds[0] == "Namespace"
    assert kinds.index("PersistentVolumeClaim") > kinds.index("PersistentVolume")


def test_chart_plan_is_pinned_and_ordered(deployment_params):
    steps = charts.plan()
    names = [s.name if isinstance(s, charts.Release) else f"manifests:{s.group}" for s in steps]
    assert names[0] == "manifests:base" and names[-1] == "jupyterhub"
    assert names.index("karpenter") < names.index("manifests:karpenter") < names.index("nvidia-device-plugin")
    assert names.index("aws-load-balancer-controller") < names.index("jupyterhub")
    pins = {r.name: r.version for r in charts.releases()}
    assert pins["jupyterhub"] == "4.4.0"
    assert re.fullmatch(r"1\.14\.\d+", pins["karpenter"])
    assert re.fullmatch(r"0\.17\.\d+", pins["nvidia-device-plugin"])
    assert {"neuron-device-plugin", "aws-load-balancer-controller"} <= set(pins)
    for step in steps:
        if isinstance(step, charts.ManifestStep):
            assert step.group in manifests.groups()
        else:
            assert (values.TERRAFORM_DIR / step.values).exists(), step.values


def test_optional_releases_follow_their_flags():
    from eks_hub_runbook import params

    plain = {r.name for r in charts.releases(params.resolve(target="aws"))}
    assert not plain & {"kube-prometheus-stack", "kubecost"}
    full = {r.name for r in charts.releases(params.resolve(target="aws", enable_monitoring=True, enable_kubecost=True))}
    assert {"kube-prometheus-stack", "kubecost"} <= full
