"""The cluster add-ons' workloads in the sandbox (issue 13): the data file covers what the
project installs (the EKS add-ons of terraform/eks.tf, the helm releases of
terraform/charts.yaml), records its sources, and builds valid objects that read their values
from what was installed; the DaemonSets' requests fit the product's fixed reserve on every
pool's nodes; and on a sandbox cluster whose EKS cluster has its add-ons and core node group,
the platform install makes ``kubectl get pods -A`` show the system pods as on EKS."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest

from eks_hub_runbook import instance_types
from eks_hub_runbook.paths import TERRAFORM_DIR
from eks_hub_runbook.platform import charts, context, instances, manifests
from eks_hub_sandbox import install as sandbox_install
from eks_hub_sandbox.addons import workloads
from eks_hub_sandbox.aws import eks_catalog
from eks_hub_sandbox.kube import scheduling
from eks_hub_sandbox.kube.controllers.workloads import placement
from eks_hub_sandbox.kube.validation import validate_builtin

REGION = "us-west-2"
EMULATOR = "sandbox cluster emulator"
IMAGE = re.compile(r"^[a-z0-9.-]+(\.[a-z]+|\.com)/[a-z0-9._/-]+:[A-Za-z0-9._-]+$")
MiB = 2**20


def terraform_addons() -> list[str]:
    """``local.addons`` of terraform/eks.tf."""
    text = (TERRAFORM_DIR / "eks.tf").read_text()
    match = re.search(r"^\s*addons\s*=\s*\[([^\]]*)\]", text, re.MULTILINE)
    assert match, "terraform/eks.tf has no local.addons list"
    return re.findall(r'"([^"]+)"', match.group(1))


def core_node_group() -> tuple[str, dict[str, str]]:
    """The core managed node group's instance type (the default of core_node_instance_types)
    and labels, as terraform/eks.tf and variables.tf set them."""
    variables = (TERRAFORM_DIR / "variables.tf").read_text()
    block = variables[variables.index('variable "core_node_instance_types"'):]
    instance = re.search(r'default\s*=\s*\["([^"]+)"', block).group(1)
    eks = (TERRAFORM_DIR / "eks.tf").read_text()
    group = eks[eks.index('resource "aws_eks_node_group" "core"'):]
    labels = dict(re.findall(r'(\w+)\s*=\s*"([^"]+)"', re.search(r"labels\s*=\s*\{([^}]*)\}", group).group(1)))
    return instance, labels


def installed_context(deployment_params, terraform_outputs, auth: str = "dummy"):
    return context.build(deployment_params[auth], terraform_outputs)


def release_builds(ctx) -> dict[str, list[dict]]:
    """Each release's workloads, from the values the install would use."""
    return {step.name: workloads.release_objects(step.name, step.version, step.namespace, ctx.release_values(step))
            for step in ctx.plan() if isinstance(step, charts.Release) and step.name in workloads.releases()}


def addon_builds() -> dict[str, list[dict]]:
    """Each EKS add-on's workloads at the version the local AWS installs by default."""
    return {name: workloads.addon_objects(name, eks_catalog.default_addon_version(name), REGION)
            for name in workloads.addons()}


def all_objects(deployment_params, terraform_outputs) -> list[dict]:
    built = {**addon_builds(), **release_builds(installed_context(deployment_params, terraform_outputs))}
    return [obj for objects in built.values() for obj in objects]


# --------------------------------------------------------------------------- the data file

def test_every_eks_addon_of_terraform_has_workloads():
    assert sorted(terraform_addons()) == sorted(workloads.addons())


def test_every_release_has_workloads_or_says_why_not():
    plan = {release.name for release in charts.releases()}
    modelled, skipped = set(workloads.releases()), set(workloads.not_modelled())
    own = set(sandbox_install.BUILT_BY_OWN_MODULE)
    assert plan == modelled | skipped | own and not modelled & skipped and not own & (modelled | skipped)
    assert {"aws-load-balancer-controller", "karpenter", "nvidia-device-plugin", "neuron-device-plugin"} <= modelled
    assert all(reason for reason in workloads.not_modelled().values())


def test_every_entry_records_its_source_and_what_emulates_it():
    for entry in [*workloads.addons().values(), *workloads.releases().values()]:
        assert len(entry.source) > 40, entry.name
        assert EMULATOR in entry.emulated_by, entry.name


def test_builders_make_valid_objects_whose_pods_say_they_are_emulated(deployment_params, terraform_outputs):
    objects = all_objects(deployment_params, terraform_outputs)
    accounts = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects if o["kind"] == "ServiceAccount"}
    workload_objects = [o for o in objects if o["kind"] in workloads.WORKLOAD_KINDS]
    assert len(workload_objects) >= 12
    for obj in objects:
        assert validate_builtin(obj) == ([], []), (obj["kind"], obj["metadata"]["name"], validate_builtin(obj))
    for obj in workload_objects:
        name = f"{obj['kind']} {obj['metadata']['namespace']}/{obj['metadata']['name']}"
        template = obj["spec"]["template"]
        assert EMULATOR in template["metadata"]["annotations"][workloads.annotation_key()], name
        labels = template["metadata"]["labels"]
        assert obj["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        account = template["spec"].get("serviceAccountName")
        assert account is None or (obj["metadata"]["namespace"], account) in accounts, name
        for container in template["spec"].get("initContainers", []) + template["spec"]["containers"]:
            assert IMAGE.match(container["image"]), (name, container["image"])
            assert not container.get("command") and not container.get("args"), name  # the placeholder runs


def test_eks_addon_images_follow_the_installed_version():
    proxy = workloads.addon_objects("kube-proxy", "v1.33.0-eksbuild.2", "eu-west-1")
    image = next(o for o in proxy if o["kind"] == "DaemonSet")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/kube-proxy:v1.33.0-minimal-eksbuild.2"
    dns = workloads.addon_objects("coredns", "v1.11.4-eksbuild.14", REGION)
    assert next(o for o in dns if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] \
        .endswith("/eks/coredns:v1.11.4-eksbuild.14")
    assert workloads.split_version("v2.1.8-eksbuild.1") == ("v2.1.8", "eksbuild.1")


def _workload(objects: list[dict], name: str) -> dict:
    return next(o for o in objects if o["kind"] in workloads.WORKLOAD_KINDS and o["metadata"]["name"] == name)


def test_replicas_and_scheduling_are_read_from_the_values(deployment_params, terraform_outputs):
    from eks_hub_runbook.platform.templating import load_yaml

    ctx = installed_context(deployment_params, terraform_outputs)
    built = release_builds(ctx)
    karpenter_values = load_yaml(TERRAFORM_DIR / charts.release("karpenter").values)
    karpenter = _workload(built["karpenter"], "karpenter")
    assert karpenter["spec"]["replicas"] == 2  # the chart's default: the values file sets none
    spec = karpenter["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"] == karpenter_values["controller"]["resources"]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", **karpenter_values["nodeSelector"]}
    assert spec["dnsPolicy"] == karpenter_values["dnsPolicy"]
    assert spec["tolerations"] == [{"key": "CriticalAddonsOnly", "operator": "Exists"}]
    lbc_values = load_yaml(TERRAFORM_DIR / charts.release("aws-load-balancer-controller").values)
    lbc = _workload(built["aws-load-balancer-controller"], "aws-load-balancer-controller")
    assert lbc["spec"]["replicas"] == 2 and lbc["spec"]["template"]["spec"]["nodeSelector"] == lbc_values["nodeSelector"]
    nvidia_values = load_yaml(TERRAFORM_DIR / charts.release("nvidia-device-plugin").values)
    nvidia = _workload(built["nvidia-device-plugin"], "nvidia-device-plugin")
    assert nvidia["metadata"]["namespace"] == "nvidia-device-plugin"
    assert nvidia["spec"]["template"]["spec"]["affinity"] == nvidia_values["affinity"]
    assert nvidia["spec"]["template"]["spec"]["tolerations"] == nvidia_values["tolerations"]
    neuron = _workload(built["neuron-device-plugin"], "neuron-device-plugin")
    assert neuron["spec"]["template"]["spec"]["tolerations"] == \
        load_yaml(TERRAFORM_DIR / charts.release("neuron-device-plugin").values)["devicePlugin"]["tolerations"]
    # another values file, other figures: nothing is retyped
    more = workloads.release_objects("karpenter", "1.14.1", "kube-system", {"replicas": 3})
    assert _workload(more, "karpenter")["spec"]["replicas"] == 3
    fewer = workloads.release_objects("aws-load-balancer-controller", "1.13.4", "kube-system", {"replicaCount": 1})
    assert _workload(fewer, "aws-load-balancer-controller")["spec"]["replicas"] == 1
    dns = workloads.addon_objects("coredns", "v1.11.4-eksbuild.14", REGION, {"replicaCount": 3})
    assert _workload(dns, "coredns")["spec"]["replicas"] == 3
    assert _workload(workloads.addon_objects("coredns", "v1.11.4-eksbuild.14", REGION), "coredns")["spec"]["replicas"] == 2


def test_a_disabled_device_plugin_renders_no_daemonset():
    objects = workloads.release_objects("neuron-device-plugin", "1.1.1", "kube-system", {"devicePlugin": {"enabled": False}})
    assert not [o for o in objects if o["kind"] == "DaemonSet"]


# --------------------------------------------------------------------------- node resources

def pool_nodes(deployment_params, terraform_outputs) -> dict[str, list[dict]]:
    """Nodes of every pool as they come up: the core node group's, and each NodePool's instance
    types (labels from the catalog, the pool's template labels and requirements; its taints)."""
    nodes: dict[str, list[dict]] = {}
    core_type, core_labels = core_node_group()
    core = {**instance_types.CATALOG[core_type].labels(), **core_labels, "eks.amazonaws.com/nodegroup": "core"}
    nodes["core"] = [{"metadata": {"name": "core-node", "labels": core}, "spec": {}}]
    for pool in (o for o in manifests.render_group("karpenter", deployment_params["dummy"], terraform_outputs)
                 if o["kind"] == "NodePool"):
        template = pool["spec"]["template"]
        requirements = template["spec"].get("requirements") or []
        types = next(r["values"] for r in requirements if r["key"] == "node.kubernetes.io/instance-type")
        for name in types:
            labels = {**instance_types.CATALOG[name].labels(), "karpenter.sh/nodepool": pool["metadata"]["name"],
                      **(template.get("metadata") or {}).get("labels", {})}
            nodes.setdefault(pool["metadata"]["name"], []).append(
                {"metadata": {"name": f"{name}-node", "labels": labels}, "spec": {"taints": template["spec"].get("taints") or []}})
    return nodes


def daemonset_requests(daemonsets: list[dict], node: dict) -> tuple[dict[str, Fraction], list[str]]:
    """What the DaemonSets that run on ``node`` request there, and their names."""
    total: dict[str, Fraction] = {}
    names = []
    for ds in daemonsets:
        if placement.should_run(ds["spec"]["template"], node)[0]:
            scheduling.add(total, scheduling.pod_requests(ds["spec"]["template"]))
            names.append(ds["metadata"]["name"])
    return total, names


def test_daemonset_requests_fit_the_models_reserve_on_every_pool(deployment_params, terraform_outputs):
    daemonsets = [o for o in all_objects(deployment_params, terraform_outputs) if o["kind"] == "DaemonSet"]
    reserve = instances.DAEMONSET_REQUESTS
    report = {}
    for pool, nodes in pool_nodes(deployment_params, terraform_outputs).items():
        for node in nodes:
            total, names = daemonset_requests(daemonsets, node)
            report[(pool, node["metadata"]["labels"]["node.kubernetes.io/instance-type"])] = (
                f"cpu {float(total.get('cpu', 0)) * 1000:.0f}m, memory {float(total.get('memory', 0) / MiB):.0f}Mi, "
                f"pods {total.get('pods', 0)}: {', '.join(names)}")
            for resource in ("cpu", "memory", "pods"):
                assert total.get(resource, 0) <= reserve[resource], (pool, node["metadata"]["name"], resource, report)
            assert {"aws-node", "kube-proxy", "eks-pod-identity-agent", "ebs-csi-node", "efs-csi-node"} <= set(names), report
            accelerator = node["metadata"]["labels"].get("accelerator")
            assert ("nvidia-device-plugin" in names) == (accelerator == "nvidia"), report
            assert ("neuron-device-plugin" in names) == (accelerator == "neuron"), report
    print(json.dumps({f"{pool} {kind}": line for (pool, kind), line in sorted(report.items())}, indent=1))


# --------------------------------------------------------------------------- on a sandbox cluster

CLUSTER = "jupyterhub-on-eks"
SYNC = "1"  # the private emulator polls its local AWS every second


def _free_of(check, what: str, timeout: float = 180.0, interval: float = 1.0):
    from eks_hub_runbook.kube import wait_for

    return wait_for(check, what, timeout=timeout, interval=interval)


def _eks_cluster_with_addons() -> dict:
    """What Terraform makes that the platform install reads, in the local AWS: a VPC, the EKS
    cluster with the add-ons of terraform/eks.tf (the local AWS's default versions, as with no
    var.addon_versions) and the core node group (2 nodes), an EFS file system and its access
    points; returns the Terraform-shaped outputs."""
    from eks_hub_runbook.aws import session

    def client(name):
        return session.client(name, "sandbox", REGION)

    ec2, iam, eks, efs = client("ec2"), client("iam"), client("eks"), client("efs")
    vpc = ec2.create_vpc(CidrBlock="10.2.0.0/21")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
               for cidr, zone in (("10.2.0.0/24", "us-west-2a"), ("10.2.1.0/24", "us-west-2b"))]
    role = iam.create_role(RoleName=f"{CLUSTER}-addons-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    eks.create_cluster(name=CLUSTER, roleArn=role, version="1.33", resourcesVpcConfig={"subnetIds": subnets})
    core_type, core_labels = core_node_group()
    eks.create_nodegroup(clusterName=CLUSTER, nodegroupName="core", nodeRole=role, subnets=subnets,
                         instanceTypes=[core_type], scalingConfig={"minSize": 2, "maxSize": 4, "desiredSize": 2},
                         labels=core_labels, diskSize=100)
    for name in terraform_addons():
        eks.create_addon(clusterName=CLUSTER, addonName=name)
    fs_id = efs.create_file_system(CreationToken="addons-tests", Encrypted=True)["FileSystemId"]
    points = {name: efs.create_access_point(
        FileSystemId=fs_id, PosixUser={"Uid": 1000, "Gid": 100},
        RootDirectory={"Path": path, "CreationInfo": {"OwnerUid": 1000, "OwnerGid": 100, "Permissions": "0755"}})["AccessPointId"]
        for name, path in (("home", "/home"), ("shared", "/shared"))}
    return {"cluster_name": CLUSTER, "region": REGION, "vpc_id": vpc, "efs_file_system_id": fs_id,
            "efs_home_access_point_id": points["home"], "efs_shared_access_point_id": points["shared"],
            "karpenter_node_role_name": f"{CLUSTER}-karpenter-node", "karpenter_queue_name": f"{CLUSTER}-karpenter",
            "singleuser_service_account": "jupyterhub-singleuser", "singleuser_namespace": "jupyterhub"}


@pytest.fixture(scope="module")
def addon_cluster(tmp_path_factory, kubectl_for):
    """A sandbox of the module's own (local AWS + cluster emulator in a private state folder, so
    its EKS cluster and node group touch no other module's cluster), with the platform installed
    as after 02_deploy; yields the install rows, the outputs and a kubectl on it."""
    import eks_hub_sandbox as sandbox
    from eks_hub_runbook import environment
    from eks_hub_runbook import params as runbook_params
    from eks_hub_runbook.platform import install

    folder = tmp_path_factory.mktemp("addons-sandbox")
    with environment.exported({"RUNBOOK_STATE_DIR": str(folder), "RUNBOOK_SANDBOX_AWS_SYNC": SYNC}):
        try:
            sandbox.up()
            outputs = _eks_cluster_with_addons()
            kubectl = kubectl_for(sandbox.kubeconfig_path(), folder / "kubectl-home")
            _free_of(lambda: len(_items(kubectl, "nodes")) == 2, "2 core nodes")
            rows = install.install(runbook_params.resolve(), outputs)
            yield {"rows": rows, "outputs": outputs, "kubectl": kubectl}
        finally:
            sandbox.down()


def _items(kubectl, *what: str) -> list[dict]:
    return json.loads(kubectl("get", *what, "-o", "json").stdout)["items"]


def _ready(pod: dict) -> bool:
    conditions = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
    return pod.get("status", {}).get("phase") == "Running" and conditions.get("Ready") == "True"


GPU_POD = """
apiVersion: v1
kind: Pod
metadata: {name: gpu-user, namespace: default}
spec:
  nodeSelector: {node-pool: gpu-ts}
  tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
  containers:
    - name: main
      image: busybox
      command: [sleep, "600"]
      resources: {limits: {nvidia.com/gpu: 1}}
"""


@pytest.fixture(scope="module")
def gpu_node(addon_cluster):
    """A GPU node: Karpenter launches one for a pod that asks for a GPU."""
    kubectl = addon_cluster["kubectl"]
    kubectl("apply", "-f", "-", input=GPU_POD)
    nodes = _free_of(lambda: [n for n in _items(kubectl, "nodes") if n["metadata"]["labels"].get("accelerator") == "nvidia"],
                     "a GPU node for the pod")
    return nodes[0]["metadata"]["name"]




@pytest.mark.sandbox
@pytest.mark.slow
def test_install_reports_the_addon_and_release_workloads(addon_cluster):
    rows = {(row["kind"], row["name"]): row for row in addon_cluster["rows"]}
    addons = rows[("add-ons", "eks add-ons")]
    assert addons["status"] == "applied" and addons["step"] == 0
    for name in terraform_addons():
        assert name in addons["detail"]
    for name in workloads.releases():
        row = rows[("release", name)]
        assert row["status"] == "applied" and "controller emulated" in row["detail"], row
    assert [row["step"] for row in addon_cluster["rows"]] == list(range(len(addon_cluster["rows"])))


@pytest.mark.sandbox
@pytest.mark.slow
def test_kubectl_get_pods_lists_the_system_pods_as_on_eks(addon_cluster, gpu_node):
    kubectl = addon_cluster["kubectl"]

    def settled():
        pods = [p for p in _items(kubectl, "pods", "-A") if p["metadata"]["namespace"] != "default"]
        nodes = _items(kubectl, "nodes")
        system = [p for p in pods if p["metadata"]["namespace"] in ("kube-system", "nvidia-device-plugin")]
        if len(nodes) < 3 or not system or not all(_ready(p) for p in system):
            return None
        return pods, nodes

    pods, nodes = _free_of(settled, "every system pod Running and Ready")
    node_names = {n["metadata"]["name"] for n in nodes}
    gpu_nodes = {n["metadata"]["name"] for n in nodes if n["metadata"]["labels"].get("accelerator") == "nvidia"}
    dns = [p for p in pods if p["metadata"]["labels"].get("k8s-app") == "kube-dns"]
    assert len(dns) == 2 and all(_ready(p) for p in dns)

    def nodes_of(label: str, value: str) -> list[str]:
        return sorted(p["spec"]["nodeName"] for p in pods if p["metadata"]["labels"].get(label) == value)

    assert nodes_of("k8s-app", "aws-node") == sorted(node_names)
    assert nodes_of("k8s-app", "kube-proxy") == sorted(node_names)
    assert nodes_of("app", "ebs-csi-node") == sorted(node_names)
    assert nodes_of("app.kubernetes.io/name", "nvidia-device-plugin") == sorted(gpu_nodes) == [gpu_node]
    got = kubectl("get", "pods", "-A").stdout
    for name in ("coredns-", "aws-node-", "kube-proxy-", "ebs-csi-controller-", "ebs-csi-node-", "efs-csi-controller-",
                 "efs-csi-node-", "eks-pod-identity-agent-", "aws-load-balancer-controller-", "karpenter-",
                 "nvidia-device-plugin-"):
        assert name in got, (name, got)


@pytest.mark.sandbox
@pytest.mark.slow
def test_kube_system_deployments_are_ready(addon_cluster):
    kubectl = addon_cluster["kubectl"]

    def ready():
        lines = kubectl("get", "deploy", "-n", "kube-system").stdout.splitlines()[1:]
        rows = {line.split()[0]: line.split()[1] for line in lines}
        return rows if rows and all(r.split("/")[0] == r.split("/")[1] != "0" for r in rows.values()) else None

    rows = _free_of(ready, "kube-system deployments READY n/n")
    assert rows == {"aws-load-balancer-controller": "2/2", "coredns": "2/2", "ebs-csi-controller": "2/2",
                    "efs-csi-controller": "2/2", "karpenter": "2/2"}


@pytest.mark.sandbox
@pytest.mark.slow
def test_describe_pod_and_logs_say_the_pod_is_emulated(addon_cluster):
    kubectl = addon_cluster["kubectl"]
    pod = _free_of(lambda: next((p for p in _items(kubectl, "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")
                                 if _ready(p)), None), "a ready coredns pod")
    described = kubectl("describe", "pod", "-n", "kube-system", pod["metadata"]["name"]).stdout
    assert f"{workloads.annotation_key()}:" in described and EMULATOR in described
    logs = kubectl("logs", "-n", "kube-system", pod["metadata"]["name"]).stdout
    assert "idle placeholder" in logs


@pytest.mark.sandbox
@pytest.mark.slow
def test_a_second_install_changes_no_workload(addon_cluster):
    import eks_hub_sandbox as sandbox
    from eks_hub_runbook import params as runbook_params
    from eks_hub_runbook.platform import install

    params = runbook_params.resolve()
    again = install.install(params, addon_cluster["outputs"])
    rows = [row for row in again if row["kind"] in ("add-ons", "manifests", "release") and row["status"] != "started"]
    # the karpenter row also re-applies the chart's CRDs, which the emulator rewrites (their status) on every apply
    assert {row["status"] for row in rows if row["name"] != "karpenter" or row["kind"] != "release"} == {"unchanged"}, \
        [(r["name"], r["detail"]) for r in rows if r["status"] != "unchanged"]
    step = next(s for s in context.build(params, addon_cluster["outputs"]).plan()
                if isinstance(s, charts.Release) and s.name == "karpenter")
    ctx = context.build(params, addon_cluster["outputs"])
    objects = workloads.release_objects("karpenter", step.version, step.namespace, ctx.release_values(step))
    assert install.apply_objects(install.api_client(sandbox.kubeconfig_path()), objects) == (0, len(objects))


@pytest.mark.sandbox
@pytest.mark.slow
def test_a_karpenter_node_with_daemon_pods_still_goes_away(addon_cluster, gpu_node):
    kubectl = addon_cluster["kubectl"]
    kubectl("delete", "pod", "-n", "default", "gpu-user", "--wait=false")
    claims = [c["metadata"]["name"] for c in _items(kubectl, "nodeclaims")
              if (c.get("status") or {}).get("nodeName") == gpu_node]
    assert claims
    kubectl("delete", "nodeclaim", claims[0], "--wait=false")
    _free_of(lambda: gpu_node not in {n["metadata"]["name"] for n in _items(kubectl, "nodes")},
             f"node {gpu_node} removed with its daemon pods", timeout=90)
