"""The AWS Load Balancer Controller, for Services of type LoadBalancer that ask for it
(``service.beta.kubernetes.io/aws-load-balancer-type: external|nlb-ip`` or
``spec.loadBalancerClass: service.k8s.aws/nlb``).

It creates, in the local AWS, a network load balancer with a security group, one target
group (target type ip) and one listener per port (TLS on the ``...-ssl-ports`` with the
``...-ssl-cert`` certificate), all tagged as the real controller tags them
(``elbv2.k8s.aws/cluster``, ``service.k8s.aws/stack``, ``service.k8s.aws/resource``), and
writes the DNS name into the Service status. Deleting the Service deletes them (the
``service.k8s.aws/resources`` finalizer). If the cluster goes away first they stay behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from ..aws import AwsUnavailable
from .base import Controller

log = logging.getLogger(__name__)

SERVICES = ("", "services")
FINALIZER = "service.k8s.aws/resources"
PREFIX = "service.beta.kubernetes.io/aws-load-balancer-"


def handles(svc: dict) -> bool:
    spec = svc.get("spec") or {}
    annotations = svc["metadata"].get("annotations") or {}
    return spec.get("type") == "LoadBalancer" and (
        spec.get("loadBalancerClass") == "service.k8s.aws/nlb"
        or annotations.get(PREFIX + "type") in ("external", "nlb-ip"))


def resource_name(namespace: str, name: str, suffix: str, cluster: str) -> str:
    """``k8s-<ns>-<name>-<hash>`` within the 32 characters ELB names allow."""
    digest = hashlib.sha256(f"{cluster}/{namespace}/{name}/{suffix}".encode()).hexdigest()[:10]
    return f"k8s-{namespace[:8]}-{name[:8]}-{digest}".replace("--", "-")


class LoadBalancerController(Controller):
    name = "aws-load-balancer-controller"
    watches = (SERVICES,)

    def __init__(self, runtime):
        super().__init__(runtime)
        self._busy: dict[str, asyncio.Task] = {}

    def reset(self) -> None:
        for task in self._busy.values():
            task.cancel()
        self._busy.clear()

    async def stop(self) -> None:
        self.reset()
        await super().stop()

    async def reconcile(self) -> None:
        for svc in self.cluster.store.list(SERVICES):
            meta = svc["metadata"]
            key = meta["uid"]
            if key in self._busy:
                continue
            deleting = bool(meta.get("deletionTimestamp"))
            if deleting and FINALIZER in (meta.get("finalizers") or []):
                self._busy[key] = asyncio.get_running_loop().create_task(self._run(key, self._delete(svc)))
            elif not deleting and handles(svc) and not ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
                self._busy[key] = asyncio.get_running_loop().create_task(self._run(key, self._create(svc)))

    async def _run(self, key: str, work) -> None:
        try:
            await work
        except AwsUnavailable:
            self.wake_at(5.0)
        except Exception as exc:
            log.warning("load balancer reconcile failed: %s", exc)
            self.wake_at(10.0)
        finally:
            self._busy.pop(key, None)

    def _tags(self, svc: dict) -> dict[str, str]:
        return {"elbv2.k8s.aws/cluster": self.runtime.cluster_name,
                "service.k8s.aws/stack": f"{svc['metadata']['namespace']}/{svc['metadata']['name']}",
                "service.k8s.aws/resource": "LoadBalancer"}

    async def _subnets(self, scheme: str) -> tuple[str, list[str]]:
        aws = self.runtime.aws
        info = (await aws.call("eks", "describe_cluster", name=self.runtime.cluster_name))["cluster"]
        config = info.get("resourcesVpcConfig") or {}
        vpc = config.get("vpcId")
        if not vpc and config.get("subnetIds"):
            vpc = (await aws.call("ec2", "describe_subnets", SubnetIds=config["subnetIds"][:1]))["Subnets"][0]["VpcId"]
        if not vpc:
            raise ValueError(f"cluster {self.runtime.cluster_name} has no VPC configuration")
        subnets = (await aws.call("ec2", "describe_subnets", Filters=[{"Name": "vpc-id", "Values": [vpc]}]))["Subnets"]
        role = "kubernetes.io/role/elb" if scheme == "internet-facing" else "kubernetes.io/role/internal-elb"
        tagged = [s for s in subnets if any(t["Key"] == role for t in s.get("Tags") or [])]
        chosen = tagged or [s for s in subnets if s["SubnetId"] in ((info.get("resourcesVpcConfig") or {}).get("subnetIds") or [])]
        by_zone: dict[str, str] = {}
        for subnet in chosen:
            by_zone.setdefault(subnet["AvailabilityZone"], subnet["SubnetId"])
        return vpc, list(by_zone.values())

    async def _create(self, svc: dict) -> None:
        aws = self.runtime.aws
        meta = svc["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        annotations = meta.get("annotations") or {}
        cluster = self.runtime.cluster_name
        scheme = annotations.get(PREFIX + "scheme", "internal")
        try:
            vpc, subnets = await self._subnets(scheme)
        except AwsUnavailable:
            raise
        except Exception as exc:
            self.cluster.record_event(svc, "FailedDeployModel", f"Failed deploy model due to couldn't auto-discover "
                                      f"subnets: {exc}", "Warning", component="service")
            raise
        if not subnets:
            self.cluster.record_event(svc, "FailedDeployModel", "Failed deploy model due to unable to resolve at "
                                      "least one subnet", "Warning", component="service")
            self.wake_at(10.0)
            return
        tags = self._tags(svc)
        tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
        self.cluster.mutate(SERVICES, namespace, name, lambda obj: obj["metadata"].__setitem__(
            "finalizers", list(dict.fromkeys([*(obj["metadata"].get("finalizers") or []), FINALIZER]))))
        group_name = resource_name(namespace, name, "sg", cluster)
        group = await aws.call("ec2", "create_security_group", GroupName=group_name, VpcId=vpc,
                               Description="[k8s] Managed SecurityGroup for LoadBalancer",
                               TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list}])
        balancer = (await aws.call("elbv2", "create_load_balancer", Name=resource_name(namespace, name, "lb", cluster),
                                   Subnets=subnets, SecurityGroups=[group["GroupId"]], Scheme=scheme, Type="network",
                                   Tags=tag_list))["LoadBalancers"][0]
        ssl_ports = {p.strip() for p in annotations.get(PREFIX + "ssl-ports", "").split(",") if p.strip()}
        certificate = annotations.get(PREFIX + "ssl-cert")
        for port in (svc.get("spec") or {}).get("ports") or []:
            target_port = port.get("targetPort")
            target_port = target_port if isinstance(target_port, int) else port["port"]
            target = (await aws.call(
                "elbv2", "create_target_group", Name=resource_name(namespace, name, f"tg{port['port']}", cluster),
                Protocol="TCP", Port=target_port, VpcId=vpc, TargetType="ip",
                Tags=tag_list[:2] + [{"Key": "service.k8s.aws/resource", "Value": f"{namespace}/{name}:{port['port']}"}]
            ))["TargetGroups"][0]
            tls = certificate and (str(port["port"]) in ssl_ports or port.get("name") in ssl_ports or "*" in ssl_ports)
            listener = {"LoadBalancerArn": balancer["LoadBalancerArn"], "Protocol": "TLS" if tls else "TCP",
                        "Port": port["port"], "DefaultActions": [{"Type": "forward", "TargetGroupArn": target["TargetGroupArn"]}]}
            if tls:
                listener["Certificates"] = [{"CertificateArn": certificate}]
            await aws.call("elbv2", "create_listener", **listener)

        def publish(obj: dict):
            obj.setdefault("status", {})["loadBalancer"] = {"ingress": [{"hostname": balancer["DNSName"]}]}
        self.cluster.mutate(SERVICES, namespace, name, publish)
        current = self.cluster.store.get(SERVICES, namespace, name)
        if current is not None:
            self.cluster.record_event(current, "SuccessfullyReconciled", "Successfully reconciled", component="service")

    async def _owned(self, svc: dict) -> list[dict]:
        aws = self.runtime.aws
        stack = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
        found = []
        for kind, listing, key in (("lb", "describe_load_balancers", "LoadBalancers"),
                                   ("tg", "describe_target_groups", "TargetGroups")):
            items = (await aws.call("elbv2", listing)).get(key) or []
            arns = [i.get("LoadBalancerArn") or i.get("TargetGroupArn") for i in items]
            for start in range(0, len(arns), 20):
                described = (await aws.call("elbv2", "describe_tags", ResourceArns=arns[start:start + 20]))["TagDescriptions"]
                for entry in described:
                    tags = {t["Key"]: t["Value"] for t in entry.get("Tags") or []}
                    if tags.get("service.k8s.aws/stack") == stack and \
                            tags.get("elbv2.k8s.aws/cluster") == self.runtime.cluster_name:
                        found.append({"kind": kind, "arn": entry["ResourceArn"]})
        return found

    async def _delete(self, svc: dict) -> None:
        aws = self.runtime.aws
        owned = await self._owned(svc)
        for item in [o for o in owned if o["kind"] == "lb"]:
            for listener in (await aws.call("elbv2", "describe_listeners", LoadBalancerArn=item["arn"])).get("Listeners") or []:
                await aws.call("elbv2", "delete_listener", ListenerArn=listener["ListenerArn"])
            await aws.call("elbv2", "delete_load_balancer", LoadBalancerArn=item["arn"])
        for item in [o for o in owned if o["kind"] == "tg"]:
            await aws.call("elbv2", "delete_target_group", TargetGroupArn=item["arn"])
        stack = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
        groups = (await aws.call("ec2", "describe_security_groups", Filters=[
            {"Name": "tag:service.k8s.aws/stack", "Values": [stack]},
            {"Name": "tag:elbv2.k8s.aws/cluster", "Values": [self.runtime.cluster_name]}])).get("SecurityGroups") or []
        for group in groups:
            await aws.call("ec2", "delete_security_group", GroupId=group["GroupId"])
        self.cluster.mutate(SERVICES, svc["metadata"]["namespace"], svc["metadata"]["name"],
                            lambda obj: obj["metadata"].__setitem__(
                                "finalizers", [f for f in obj["metadata"].get("finalizers") or [] if f != FINALIZER]))
