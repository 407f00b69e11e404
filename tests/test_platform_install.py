"""The aws install path without a cluster: helm argv, idempotence, retries, order, errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from eks_hub_runbook.errors import PlatformError
from eks_hub_runbook.platform import charts, context, install, values

# Rendering registers secrets and writes values files: keep both in the session's state folder.
pytestmark = pytest.mark.usefixtures("state_dir")


class FakeHelm:
    """Plays the helm CLI: remembers releases installed, can fail the first N upgrades."""

    def __init__(self, fail_first: int = 0):
        self.calls: list[list[str]] = []
        self.deployed: dict[str, tuple[str, dict]] = {}
        self.fail_first = fail_first

    def __call__(self, argv):
        self.calls.append(argv)
        verb = argv[1]
        if verb == "list":
            name = argv[argv.index("--filter") + 1].strip("^$")
            rows = [{"name": name, "status": "deployed", "chart": f"{name}-{self.deployed[name][0]}"}] if name in self.deployed else []
            return subprocess.CompletedProcess(argv, 0, json.dumps(rows), "")
        if verb == "get":
            name = argv[3]
            return subprocess.CompletedProcess(argv, 0, json.dumps(self.deployed[name][1]), "")
        if verb == "upgrade":
            if self.fail_first:
                self.fail_first -= 1
                return subprocess.CompletedProcess(argv, 1, "", "Error: context deadline exceeded")
            name, version = argv[3], argv[argv.index("--version") + 1]
            import yaml

            self.deployed[name] = (version, yaml.safe_load(Path(argv[argv.index("--values") + 1]).read_text()))
            return subprocess.CompletedProcess(argv, 0, "", "")
        raise AssertionError(argv)

    def upgrades(self):
        return [c[3] for c in self.calls if c[1] == "upgrade"]


def test_helm_argv_is_pinned_waits_and_times_out(tmp_path):
    release = charts.release("jupyterhub")
    argv = install.helm_upgrade_argv(release, tmp_path / "v.yaml", tmp_path / "kubeconfig")
    assert argv[:5] == ["helm", "upgrade", "--install", "jupyterhub", "jupyterhub"]
    for flag, value in (("--version", "4.4.0"), ("--namespace", "jupyterhub"), ("--timeout", "15m"),
                        ("--repo", "https://hub.jupyter.org/helm-chart/"), ("--values", str(tmp_path / "v.yaml"))):
        assert argv[argv.index(flag) + 1] == value
    assert "--wait" in argv and "--create-namespace" in argv
    oci = install.helm_upgrade_argv(charts.release("karpenter"), tmp_path / "v.yaml", tmp_path / "kc")
    assert oci[4] == "oci://public.ecr.aws/karpenter/karpenter" and "--repo" not in oci


def test_missing_helm_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(install.shutil, "which", lambda name: None)
    with pytest.raises(PlatformError, match="helm is not installed"):
        install.helm_binary()


@pytest.fixture
def aws_install(monkeypatch, deployment_params, terraform_outputs, tmp_path):
    applied: list[list[dict]] = []
    monkeypatch.setattr(install, "helm_binary", lambda: "helm")
    monkeypatch.setattr(install, "api_client", lambda kubeconfig: object())
    monkeypatch.setattr(install, "apply_objects", lambda client, objs: applied.append(objs) or (len(objs), 0))

    def run(helm, params=None):
        return install.install_helm(context.build(params or deployment_params["dummy"], terraform_outputs), tmp_path / "kubeconfig",
                                   run=helm, backoff=0)
    run.applied = applied
    return run


def test_aws_install_order_and_second_run_changes_nothing(aws_install):
    helm = FakeHelm()
    rows = aws_install(helm)
    assert [r["name"] for r in rows] == [s.name if isinstance(s, charts.Release) else s.group for s in charts.plan()
                                         if not (isinstance(s, charts.Release) and s.when)]
    assert helm.upgrades() == ["aws-load-balancer-controller", "karpenter", "nvidia-device-plugin",
                               "neuron-device-plugin", "jupyterhub"]
    assert {r["status"] for r in rows if r["kind"] == "release"} == {"installed"}
    helm.calls.clear()
    again = aws_install(helm)
    assert helm.upgrades() == []
    assert {r["status"] for r in again if r["kind"] == "release"} == {"unchanged"}


def test_values_files_are_private_and_secret_free(aws_install, deployment_params, oauth_secret_env, state_dir):
    helm = FakeHelm()
    aws_install(helm, deployment_params["oauth"])
    files = [Path(c[c.index("--values") + 1]) for c in helm.calls if c[1] == "upgrade"]
    for path in files:
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert oauth_secret_env not in path.read_text()
        assert state_dir in path.parents  # the git-ignored state folder, never the repository
    secrets = [o for objs in aws_install.applied for o in objs if o["kind"] == "Secret"]
    assert [s["metadata"]["name"] for s in secrets] == [values.CLIENT_SECRET_NAME]


def test_helm_retries_then_succeeds(aws_install):
    helm = FakeHelm(fail_first=2)
    rows = aws_install(helm)
    first = next(r for r in rows if r["kind"] == "release")
    assert first["attempts"] == 3 and first["status"] == "installed"


def test_helm_gives_up_with_the_error_tail(aws_install):
    with pytest.raises(PlatformError, match="context deadline exceeded"):
        aws_install(FakeHelm(fail_first=99))


def test_optional_releases_install_when_flagged(aws_install, terraform_outputs):
    from eks_hub_runbook import params

    helm = FakeHelm()
    aws_install(helm, params.resolve(target="aws", enable_monitoring=True, enable_kubecost=True))
    assert {"kube-prometheus-stack", "kubecost"} <= set(helm.upgrades())


def test_install_needs_a_kubeconfig_on_aws(terraform_outputs):
    from eks_hub_runbook import params

    with pytest.raises(PlatformError, match="kubeconfig"):
        install.install(params.resolve(target="aws"), terraform_outputs)
