"""EKS cluster access: endpoint and CA from ``DescribeCluster``, and EKS bearer tokens.

A token is what ``aws eks get-token`` prints: ``k8s-aws-v1.`` + the base64url (unpadded)
of a presigned STS ``GetCallerIdentity`` URL whose signature covers the
``x-k8s-aws-id: <cluster>`` header. The same code serves both targets: on ``sandbox``
the local AWS answers DescribeCluster with the sandbox API server's URL and CA, and
the sandbox API server accepts these tokens.

Kubeconfigs written here use an ``exec`` credential plugin that runs this module
(``python -m eks_hub_runbook.aws.eks token ...``), so kubectl, helm and the
kubernetes client refresh the 15-minute tokens by themselves.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .. import targets
from ..errors import ClusterAccessError
from . import consistency, session

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
PRESIGN_EXPIRES = 60
TOKEN_LIFETIME = timedelta(minutes=14)  # EKS accepts a token for 15 minutes
EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"


def describe(cluster: str, target: str, region: str, just_created: bool = False) -> dict:
    """Endpoint facts of a cluster: ``{"name", "arn", "endpoint", "certificate_authority", "version", "status"}``.

    ``certificate_authority`` is the base64 PEM as EKS returns it. ``just_created``: the cluster
    was created moments ago (02_deploy, after Terraform), so a NotFound is read again briefly
    (EKS is eventually consistent) before it counts.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    eks = session.client("eks", target, region)
    try:
        if just_created:
            info = consistency.read_after_create(lambda: eks.describe_cluster(name=cluster), "EKS DescribeCluster",
                                                 ["ResourceNotFoundException"])["cluster"]
        else:
            info = eks.describe_cluster(name=cluster)["cluster"]
    except session.AwsCallError:
        raise  # still throttled or unavailable, or never visible: its message says so
    except ClientError as exc:
        raise ClusterAccessError(f"EKS cluster '{cluster}' in {region} ({target}): "
                                 f"{str(exc.response['Error'].get('Message', exc)).rstrip('.')}. Fix: deploy it first (02_deploy) "
                                 f"or check the deployment name and region") from exc
    except BotoCoreError as exc:
        raise ClusterAccessError(f"cannot reach EKS in {region} ({target}): {exc}. Fix: for the sandbox run "
                                 f"`runbook sandbox up`; for AWS check your credentials") from exc
    if not info.get("endpoint"):
        raise ClusterAccessError(f"EKS cluster '{cluster}' has no endpoint yet (status {info.get('status')}). "
                                 f"Fix: wait until it is ACTIVE")
    return {"name": info["name"], "arn": info.get("arn", ""), "endpoint": info["endpoint"],
            "certificate_authority": (info.get("certificateAuthority") or {}).get("data", ""),
            "version": info.get("version", ""), "status": info.get("status", "")}


def get_token(cluster: str, target: str, region: str) -> tuple[str, datetime]:
    """An EKS bearer token for ``cluster`` and its expiry time (UTC)."""
    sts = session.client("sts", target, region)

    def add_cluster_header(request, **_):
        request.headers[CLUSTER_ID_HEADER] = cluster

    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_header)
    url = sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=PRESIGN_EXPIRES, HttpMethod="GET")
    token = TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    return token, datetime.now(timezone.utc) + TOKEN_LIFETIME


def exec_credential(cluster: str, target: str, region: str) -> dict:
    """The ExecCredential document a kubeconfig ``exec`` plugin prints."""
    token, expires = get_token(cluster, target, region)
    return {"kind": "ExecCredential", "apiVersion": EXEC_API_VERSION, "spec": {},
            "status": {"expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"), "token": token}}


def build_kubeconfig(cluster: str, target: str, region: str,
                     embed_token: bool = False, just_created: bool = False) -> dict:
    """A kubeconfig (as a dict) for an EKS cluster.

    By default the user entry is an ``exec`` plugin (tokens refresh themselves); with
    ``embed_token=True`` a token valid for ~14 minutes is written instead. ``just_created``:
    see :func:`describe`.
    """
    info = describe(cluster, target, region, just_created=just_created)
    context = info["arn"] or f"{target}:{region}:{cluster}"
    if embed_token:
        user = {"token": get_token(cluster, target, region)[0]}
    else:
        user = {"exec": {
            "apiVersion": EXEC_API_VERSION,
            "command": sys.executable,
            "args": ["-m", "eks_hub_runbook.aws.eks", "token", "--cluster", cluster, "--target", target,
                     "--region", region],
            "interactiveMode": "Never",
            "provideClusterInfo": False,
        }}
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": info["endpoint"],
                                                   "certificate-authority-data": info["certificate_authority"]}}],
        "users": [{"name": context, "user": user}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
        "preferences": {},
    }


def save_kubeconfig(config: dict, path: Path) -> Path:
    """Write a kubeconfig readable by its owner only (0600 even where a wider file was before),
    atomically."""
    import yaml

    from ..paths import write_file

    return write_file(path, yaml.safe_dump(config, sort_keys=False), private=True)


def write_kubeconfig(params, just_created: bool = False) -> Path:
    """Write the deployment's kubeconfig (exec-plugin tokens) to its state folder and return the path.

    ``just_created``: the cluster was created moments ago (see :func:`describe`).
    """
    from ..paths import deployment_dir

    config = build_kubeconfig(params.cluster_name, params.target, params.region, just_created=just_created)
    return save_kubeconfig(config, deployment_dir(params.deployment) / "kubeconfig")


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eks_hub_runbook.aws.eks")
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="print an ExecCredential with an EKS token (kubeconfig exec plugin)")
    token.add_argument("--cluster", required=True)
    token.add_argument("--target", required=True, choices=targets.names())
    token.add_argument("--region", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(exec_credential(args.cluster, args.target, args.region)))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
