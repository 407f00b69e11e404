"""The sandbox cluster together with the local AWS: the EKS cluster resolves to the emulator
(awscli ``update-kubeconfig``; the product's own kubeconfig builder is tested in
tests/test_eks.py), managed node groups become nodes,
EBS volumes and network load balancers are created and deleted in AWS, and deleting the
EKS cluster wipes the cluster state while its load balancers stay behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from eks_hub_runbook.kube import wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

CLUSTER = "kube-aws-test"
SYNC = 1.0  # the private emulator polls the private AWS every second


def _wait(check, timeout=30.0, interval=0.3, what="condition"):
    return wait_for(check, what, timeout=timeout, interval=interval)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def private_sandbox(tmp_path_factory, monkeypatch_module):
    """A private local AWS and cluster emulator pair: deleting this module's EKS cluster wipes
    only this emulator, never the session's shared one other tests rely on."""
    import eks_hub_sandbox as sandbox

    folder = tmp_path_factory.mktemp("private-sandbox")
    aws_port, kube_port = _free_port(), _free_port()
    ca, kubeconfig = folder / "ca.pem", folder / "kubeconfig"
    env = {**os.environ, **sandbox.SANDBOX_CREDENTIALS, "AWS_DEFAULT_REGION": sandbox.SANDBOX_REGION,
           "RUNBOOK_SANDBOX_AWS_SYNC": str(SYNC), "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    kube = subprocess.Popen([sys.executable, "-m", "eks_hub_sandbox.kube", "--port", str(kube_port),
                             "--aws-endpoint", f"http://127.0.0.1:{aws_port}", "--state-dir", str(folder / "cluster"),
                             "--kubeconfig", str(kubeconfig), "--ca-file", str(ca)],
                            env=env, stdout=open(folder / "kube.log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    aws = subprocess.Popen([sys.executable, "-m", "eks_hub_sandbox.aws_server", "--port", str(aws_port),
                            "--kube-url", f"https://127.0.0.1:{kube_port}", "--kube-ca-file", str(ca)],
                           env=env, stdout=open(folder / "aws.log", "wb"), stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        _wait(lambda: _listening(aws_port) and _listening(kube_port) and kubeconfig.exists(), timeout=60,
              what="private sandbox listening")
        endpoint = f"http://127.0.0.1:{aws_port}"
        monkeypatch_module.setattr(sandbox, "aws_endpoint_url", lambda: endpoint)
        yield {"endpoint": endpoint, "kube_url": f"https://127.0.0.1:{kube_port}", "kubeconfig": kubeconfig,
               "env": {**env, "AWS_ENDPOINT_URL": endpoint}}
    finally:
        for process in (kube, aws):
            process.send_signal(signal.SIGTERM)
        for process in (kube, aws):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def kube_api(private_sandbox):
    from eks_hub_runbook import kube

    return kube.load_client(private_sandbox["kubeconfig"])


@pytest.fixture(scope="module")
def kubectl(private_sandbox, tmp_path_factory, kubectl_for):
    return kubectl_for(private_sandbox["kubeconfig"], tmp_path_factory.mktemp("kubectl-aws-home"), timeout=60)


@pytest.fixture(scope="module")
def eks_cluster(private_sandbox):
    """An EKS cluster with a VPC (subnets tagged for load balancers) and a core node group."""
    from eks_hub_runbook.aws import session

    ec2, iam, eks = session.client("ec2", "sandbox", "us-west-2"), session.client("iam", "sandbox", "us-west-2"), session.client("eks", "sandbox", "us-west-2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/21")["Vpc"]["VpcId"]
    subnets = []
    for cidr, zone, role in (("10.1.2.0/26", "us-west-2a", "kubernetes.io/role/elb"),
                             ("10.1.2.64/26", "us-west-2b", "kubernetes.io/role/elb"),
                             ("10.1.0.0/24", "us-west-2a", "kubernetes.io/role/internal-elb")):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone,
                                   TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": role, "Value": "1"}]}])
        subnets.append(subnet["Subnet"]["SubnetId"])
    role = iam.create_role(RoleName=f"{CLUSTER}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    eks.create_cluster(name=CLUSTER, roleArn=role, version="1.32",
                       resourcesVpcConfig={"subnetIds": subnets, "endpointPublicAccess": True})
    eks.create_nodegroup(clusterName=CLUSTER, nodegroupName="core", nodeRole=role, subnets=subnets,
                         instanceTypes=["m5.xlarge"], scalingConfig={"minSize": 2, "maxSize": 8, "desiredSize": 2},
                         labels={"NodeGroupType": "core"}, diskSize=100)
    return {"name": CLUSTER, "vpc": vpc, "subnets": subnets}


def test_managed_node_group_becomes_nodes(kube_api, eks_cluster):
    from eks_hub_runbook import kube

    rows = _wait(lambda: [r for r in kube.nodes(kube_api, "eks.amazonaws.com/nodegroup=core")
                          if r["ready"]] if len(kube.nodes(kube_api, "eks.amazonaws.com/nodegroup=core")) == 2 else None,
                 timeout=SYNC * 2 + 10, what="2 core nodes")
    assert {r["instance_type"] for r in rows} == {"m5.xlarge"}
    assert {r["pool"] for r in rows} == {"core"}
    assert {r["zone"] for r in rows} == {"us-west-2a", "us-west-2b"}


def test_update_kubeconfig_reaches_the_emulator(private_sandbox, eks_cluster, tmp_path):
    env = {**private_sandbox["env"], "KUBECONFIG": str(tmp_path / "config"), "HOME": str(tmp_path)}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    subprocess.run(["aws", "eks", "update-kubeconfig", "--name", CLUSTER], env=env, check=True, capture_output=True)
    result = subprocess.run(["kubectl", "get", "namespaces", "-o", "name"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "namespace/kube-system" in result.stdout


def test_ebs_volume_for_a_gp3_claim(kube_api, kubectl, eks_cluster):
    from eks_hub_runbook.aws import session
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    kubectl("apply", "-f", "-", input="""
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: gp3-test}
provisioner: ebs.csi.aws.com
parameters: {type: gp3, encrypted: "true"}
reclaimPolicy: Delete
volumeBindingMode: Immediate
""")
    kubectl("create", "namespace", "ebs-test", check=False)
    core.create_namespaced_persistent_volume_claim("ebs-test", {
        "metadata": {"name": "hub-db-dir"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "gp3-test",
                 "resources": {"requests": {"storage": "1Gi"}}}})
    pvc = _wait(lambda: (lambda c: c if c.status.phase == "Bound" else None)(
        core.read_namespaced_persistent_volume_claim("hub-db-dir", "ebs-test")), what="claim bound")
    pv = core.read_persistent_volume(pvc.spec.volume_name)
    volume_id = pv.spec.csi.volume_handle
    ec2 = session.client("ec2", "sandbox", "us-west-2")
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    tags = {t["Key"]: t["Value"] for t in volume["Tags"]}
    assert tags["kubernetes.io/created-for/pvc/name"] == "hub-db-dir"
    assert tags["kubernetes.io/created-for/pvc/namespace"] == "ebs-test"
    assert tags["ebs.csi.aws.com/cluster"] == "true" and tags["KubernetesCluster"] == CLUSTER
    assert volume["VolumeType"] == "gp3" and volume["Size"] == 1

    core.delete_namespaced_persistent_volume_claim("hub-db-dir", "ebs-test")
    _wait(lambda: not ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Volumes"],
          what="EBS volume deleted")
    _wait(lambda: pvc.spec.volume_name not in [p.metadata.name for p in core.list_persistent_volume().items],
          what="PV deleted")


def _balancers_of(stack: str) -> list[str]:
    from eks_hub_runbook.aws import session

    elbv2 = session.client("elbv2", "sandbox", "us-west-2")
    arns = [lb["LoadBalancerArn"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]]
    owned = []
    for start in range(0, len(arns), 20):
        for entry in elbv2.describe_tags(ResourceArns=arns[start:start + 20])["TagDescriptions"]:
            tags = {t["Key"]: t["Value"] for t in entry["Tags"]}
            if tags.get("service.k8s.aws/stack") == stack and tags.get("elbv2.k8s.aws/cluster") == CLUSTER:
                owned.append(entry["ResourceArn"])
    return owned


SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: default
  annotations:
    service.beta.kubernetes.io/aws-load-balancer-type: external
    service.beta.kubernetes.io/aws-load-balancer-nlb-target-type: ip
    service.beta.kubernetes.io/aws-load-balancer-scheme: internet-facing
spec:
  type: LoadBalancer
  selector: {{app: proxy}}
  ports: [{{name: http, port: 80, targetPort: 8000}}]
"""


def test_load_balancer_service_gets_an_nlb_and_deleting_it_deletes_the_nlb(kube_api, kubectl, eks_cluster):
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    kubectl("apply", "-f", "-", input=SERVICE.format(name="proxy-public"))
    svc = _wait(lambda: (lambda s: s if s.status.load_balancer.ingress else None)(
        core.read_namespaced_service("proxy-public", "default")), what="load balancer hostname")
    hostname = svc.status.load_balancer.ingress[0].hostname
    assert hostname and "elb" in hostname
    assert len(_balancers_of("default/proxy-public")) == 1
    out = kubectl("get", "svc", "proxy-public").stdout
    assert hostname in out and "LoadBalancer" in out

    kubectl("delete", "svc", "proxy-public", "--timeout=30s")
    _wait(lambda: not _balancers_of("default/proxy-public"), what="NLB deleted")


def test_deleting_the_eks_cluster_wipes_state_and_leaves_load_balancers(kube_api, kubectl, eks_cluster):
    from eks_hub_runbook import kube
    from eks_hub_runbook.aws import session
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    kubectl("apply", "-f", "-", input=SERVICE.format(name="left-behind"))
    _wait(lambda: core.read_namespaced_service("left-behind", "default").status.load_balancer.ingress,
          what="load balancer hostname")
    kubectl("create", "namespace", "doomed")
    eks = session.client("eks", "sandbox", "us-west-2")
    eks.delete_nodegroup(clusterName=CLUSTER, nodegroupName="core")
    eks.delete_cluster(name=CLUSTER)
    _wait(lambda: "doomed" not in [n.metadata.name for n in core.list_namespace().items],
          timeout=SYNC * 2 + 10, what="cluster state wiped")
    assert kube.nodes(kube_api, "eks.amazonaws.com/nodegroup=core") == []
    assert {"default", "kube-system"} <= {n.metadata.name for n in core.list_namespace().items}
    assert len(_balancers_of("default/left-behind")) == 1, "the NLB must stay behind in AWS"
