"""Shared fixtures of the product's tests (tests/) and the sandbox's (sandbox/tests/). Sandbox
services run in a per-session temporary state folder so tests never touch a developer's own
sandbox, and are always stopped at the end. Nothing here imports the sandbox package before a
fixture that needs it runs, so the product's tests also run where it is not installed."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent

# The sandbox cluster's emulated delays, short for tests: a Karpenter node in 0.5 s,
# a first image pull per node in 1.5 s (defaults: 5 s and 3 s).
os.environ.setdefault("RUNBOOK_SANDBOX_NODE_DELAY", "0.5")
os.environ.setdefault("RUNBOOK_SANDBOX_PULL_DELAY", "1.5")


def pytest_configure(config):
    """Set the session's private RUNBOOK_STATE_DIR before any test runs.

    Set here, not lazily in a fixture: a test that monkeypatches the variable and then
    first requests a session fixture would otherwise have monkeypatch restore it to
    "unset" afterwards, and every later test would look in the repository's .runbook/.
    """
    import tempfile

    global SESSION_STATE_DIR, _OWN_STATE_DIR
    given = os.environ.get("RUNBOOK_TEST_STATE_DIR")  # a test that runs pytest itself chooses the folder
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    SESSION_STATE_DIR = Path(given) if given else Path(tempfile.mkdtemp(prefix=f"runbook-state-{worker}-"))
    _OWN_STATE_DIR = not given
    os.environ["RUNBOOK_STATE_DIR"] = str(SESSION_STATE_DIR)


SESSION_STATE_DIR: Path | None = None
_OWN_STATE_DIR = False


# The longest test files, longest first (from `--durations=0` in CI: each takes minutes). xdist's
# loadfile scheduling hands files out in collection order, so a long file collected late becomes the
# run's tail while the other worker idles; started first, they overlap with everything else.
LONGEST_FIRST = (
    "tests/test_fresh_clone.py",  # ~850 s under CI's load
    "tests/test_golden.py",  # ~650 s
    "tests/test_reliability.py",  # ~620 s
    "tests/test_faults.py",  # ~450 s
    "tests/test_workshop.py",  # ~360 s
    "tests/test_terraform_sandbox.py",  # ~320 s
    "tests/test_records_secrets_sandbox.py",
    "tests/test_product_alone.py",
    "tests/test_terraform_module.py",
    "tests/test_runbook_bad_inputs.py",
    "tests/test_browser.py",
)


def pytest_collection_modifyitems(session, config, items):
    """Collect the longest files first (:data:`LONGEST_FIRST`), the rest in their usual order."""
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


def pytest_unconfigure(config):
    """Stop whatever still runs from the session's state folder, then remove the folder."""
    import shutil

    if SESSION_STATE_DIR is None or not SESSION_STATE_DIR.exists():
        return
    from eks_hub_runbook import targets

    with session_state():
        targets.stop_local_services()
    if _OWN_STATE_DIR:
        shutil.rmtree(SESSION_STATE_DIR, ignore_errors=True)


@contextmanager
def session_state():
    """Run a block with RUNBOOK_STATE_DIR at the session's folder (whatever a test set)."""
    from eks_hub_runbook import environment

    with environment.exported({"RUNBOOK_STATE_DIR": str(SESSION_STATE_DIR)}):
        yield SESSION_STATE_DIR


class _SessionSandbox:
    """The sandbox module with every function call bound to the session's state folder,
    so paths and URLs (kubeconfig, CA, ports) do not depend on what a test set meanwhile."""

    def __getattr__(self, name):
        import eks_hub_sandbox as sandbox

        attr = getattr(sandbox, name)
        if not callable(attr):
            return attr

        def bound(*args, **kwargs):
            with session_state():
                return attr(*args, **kwargs)

        return bound


def session_kubeconfig() -> Path:
    """The admin kubeconfig of the session's sandbox cluster."""
    import eks_hub_sandbox as sandbox

    with session_state():
        return sandbox.kubeconfig_path()


@pytest.fixture(scope="session")
def state_dir() -> Path:
    """The private RUNBOOK_STATE_DIR of this test session (set in pytest_configure)."""
    return SESSION_STATE_DIR


@pytest.fixture(scope="session")
def aws_sandbox(state_dir):
    """The sandbox's local AWS (moto + EKS layer) on loopback, for the whole session."""
    import eks_hub_sandbox as sandbox

    with session_state():
        sandbox.up(only=("aws",))
        url = sandbox.aws_endpoint_url()
    yield url
    with session_state():
        sandbox.down()


@pytest.fixture(scope="module")
def private_aws_sandbox(tmp_path_factory):
    """A local AWS of the module's own (own state folder, exported for the module's duration).

    For modules that create and delete EKS clusters: the session's cluster emulator follows the
    session's local AWS and wipes its state when the clusters it knows are deleted, which would
    take the CRDs and objects other modules installed with it.
    """
    import eks_hub_sandbox as sandbox
    from eks_hub_runbook import environment

    with environment.exported({"RUNBOOK_STATE_DIR": str(tmp_path_factory.mktemp("private-aws"))}):
        try:
            sandbox.up(only=("aws",))
            yield sandbox.aws_endpoint_url()
        finally:
            sandbox.down()


@pytest.fixture(scope="session")
def full_sandbox(state_dir):
    """All core sandbox services: local AWS and the cluster emulator."""
    import eks_hub_sandbox as sandbox

    with session_state():
        sandbox.up()
    yield _SessionSandbox()
    with session_state():
        sandbox.down()


# --- platform layer (issue 4) ---------------------------------------------------------

@pytest.fixture(scope="session")
def terraform_outputs() -> dict:
    """Terraform outputs as the platform reads them, with the shapes the AWS module produces."""
    return {
        "cluster_name": "jupyterhub-on-eks",
        "region": "us-west-2",
        "vpc_id": "vpc-0123456789abcdef0",
        "efs_file_system_id": "fs-0123456789abcdef0",
        "efs_home_access_point_id": "fsap-0aaaaaaaaaaaaaaaa",
        "efs_shared_access_point_id": "fsap-0bbbbbbbbbbbbbbbb",
        "karpenter_node_role_name": "jupyterhub-on-eks-karpenter-node",
        "karpenter_queue_name": "jupyterhub-on-eks-karpenter",
        "singleuser_service_account": "jupyterhub-singleuser",
        "singleuser_namespace": "jupyterhub",
        "cognito_authorize_url": "https://jhub-1a2b3c.auth.us-west-2.amazoncognito.com/oauth2/authorize",
        "cognito_token_url": "https://jhub-1a2b3c.auth.us-west-2.amazoncognito.com/oauth2/token",
        "cognito_userinfo_url": "https://jhub-1a2b3c.auth.us-west-2.amazoncognito.com/oauth2/userInfo",
        "cognito_client_id": "4abcdefghijklmnopqrstuvwx1",
        "cognito_client_secret": {"value": "cognito-client-secret-for-tests-0123456789", "sensitive": True},
    }


@pytest.fixture(scope="session")
def deployment_params():
    """Valid parameters per login method (dummy = type 1, cognito = type 2, oauth = type 3)."""
    from eks_hub_runbook import params

    arn = "arn:aws:acm:us-west-2:123456789012:certificate/12345678-1234-1234-1234-123456789012"
    return {  # the values and manifests are the same on every target; AWS needs no stand-in installed
        "dummy": params.resolve(target="aws", auth="dummy"),
        "cognito": params.resolve(target="aws", auth="cognito", domain="hub.example.com", certificate_arn=arn),
        "oauth": params.resolve(target="aws", auth="oauth", domain="hub.example.com", certificate_arn=arn,
                                oauth_domain="keycloak.example.com", oauth_client_id="jupyterhub"),
    }


@pytest.fixture
def oauth_secret_env(monkeypatch):
    """The oauth client secret as the runbook reads it (environment, never a parameter)."""
    value = "oauth-client-secret-for-tests-9876543210"
    monkeypatch.setenv("RUNBOOK_OAUTH_CLIENT_SECRET", value)
    return value


@pytest.fixture
def offline_kubespawner(monkeypatch):
    """KubeSpawner without a cluster: its client config loading is skipped, nothing connects."""
    import kubespawner.spawner

    monkeypatch.setattr(kubespawner.spawner, "load_config", lambda **kwargs: None)
    return kubespawner.spawner.KubeSpawner


@pytest.fixture(scope="session")
def sandbox_outputs(full_sandbox, terraform_outputs) -> dict:
    """Terraform-shaped outputs whose EFS file system and access points exist in the local AWS
    (so the sandbox's EFS CSI driver can map them), for platform tests that skip Terraform."""
    from eks_hub_runbook.aws import session

    efs = session.client("efs", "sandbox", "us-west-2")
    fs_id = efs.create_file_system(CreationToken="platform-tests", Encrypted=True)["FileSystemId"]
    points = {}
    for name, path in (("home", "/home"), ("shared", "/shared")):
        points[name] = efs.create_access_point(
            FileSystemId=fs_id,
            PosixUser={"Uid": 1000, "Gid": 100},
            RootDirectory={"Path": path, "CreationInfo": {"OwnerUid": 1000, "OwnerGid": 100, "Permissions": "0755"}},
            Tags=[{"Key": "Name", "Value": f"platform-tests-{name}"}],
        )["AccessPointId"]
    return {**terraform_outputs, "efs_file_system_id": fs_id,
            "efs_home_access_point_id": points["home"], "efs_shared_access_point_id": points["shared"]}


CORE_NODE_IP = "10.0.250.250"  # outside the addresses the emulator hands out


def ensure_core_node(api) -> str:
    """A node of the EKS core node group as Terraform would make it, for the platform tests that
    skip Terraform: the hub and proxy pods tolerate only core nodes. Created when missing (a
    destroyed cluster's wipe removes it); returns its name."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from eks_hub_runbook import instance_types
    from eks_hub_sandbox.kube.nodes import build_node

    node = build_node(instance_types.get("m5.xlarge"), CORE_NODE_IP, "us-west-2a", "us-west-2", {"NodeGroupType": "core"})
    try:
        client.CoreV1Api(api).create_node(node)
    except ApiException as exc:
        if exc.status != 409:
            raise
    return node["metadata"]["name"]


@pytest.fixture(scope="session")
def core_node():
    """:func:`ensure_core_node`, for a cluster of a test's own: ``core_node(api)``."""
    return ensure_core_node


@pytest.fixture(scope="session")
def private_cluster(tmp_path_factory):
    """``with private_cluster("name") as api:`` a cluster emulator in a state folder of its own (no
    local AWS) with one core node, stopped at the end: what runs there never meets the session sandbox."""

    @contextmanager
    def start(name: str):
        import eks_hub_sandbox as sandbox
        from eks_hub_runbook.platform import install

        with pytest.MonkeyPatch.context() as env:
            env.setenv("RUNBOOK_STATE_DIR", str(tmp_path_factory.mktemp(name)))
            sandbox.up(only=("kube",))
            try:
                api = install.api_client(sandbox.kubeconfig_path())
                ensure_core_node(api)
                yield api
            finally:
                sandbox.down()

    return start


@pytest.fixture(scope="module")
def platform_outputs(sandbox_outputs):
    """``sandbox_outputs`` with the core node the hub runs on (see ``ensure_core_node``)."""
    import eks_hub_sandbox as sandbox
    from eks_hub_runbook.platform import install

    with session_state():
        ensure_core_node(install.api_client(sandbox.kubeconfig_path()))
    return sandbox_outputs


# --- sandbox cluster (issue 3) ----------------------------------------------------------

@pytest.fixture(scope="session")
def kube_sandbox(state_dir):
    """The sandbox cluster emulator (the kube service alone; reused when already running).

    Controllers that need the local AWS retry until it is up (``full_sandbox`` starts it).
    """
    import eks_hub_sandbox as sandbox
    from eks_hub_sandbox import services

    with session_state():
        started_here = not services.status("kube").running
        sandbox.up(only=("kube",))
    yield _SessionSandbox()
    if started_here:
        with session_state():
            services.stop("kube")


@pytest.fixture(scope="session")
def kube_api(kube_sandbox):
    """A kubernetes ApiClient on the sandbox cluster (admin kubeconfig)."""
    from eks_hub_runbook import kube

    return kube.load_client(session_kubeconfig())


def kubectl_runner(kubeconfig: Path, home: Path, timeout: float = 120):
    """``run("get", "pods", "-A")``: the real kubectl on ``kubeconfig`` (with a private HOME).

    Returns the CompletedProcess; ``check=True`` (default) fails the test on a non-zero exit.
    """
    import subprocess

    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(home)}

    def run(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, env=env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def kubectl_for():
    """The factory of :func:`kubectl_runner`, for a cluster of a test's own."""
    return kubectl_runner


@pytest.fixture(scope="session")
def kubectl(kube_sandbox, tmp_path_factory):
    """Run the real kubectl against the session's sandbox cluster: ``kubectl("get", "pods", "-A")``."""
    return kubectl_runner(session_kubeconfig(), tmp_path_factory.mktemp("kubectl-home"))


@pytest.fixture(scope="session")
def karpenter_crds(kubectl):
    """The real Karpenter v1 CRDs (the package's third-party copy), installed once per session."""
    from eks_hub_runbook import third_party

    kubectl("apply", "-f", str(third_party.folder(third_party.KARPENTER)))
    return ["nodepools.karpenter.sh", "nodeclaims.karpenter.sh", "ec2nodeclasses.karpenter.k8s.aws"]


@pytest.fixture(scope="session")
def nvidia_time_slicing(kubectl):
    """The NVIDIA device plugin's ConfigMap with 4 time-slicing replicas (as the platform installs it)."""
    kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: ConfigMap
metadata:
  name: nvidia-device-plugin-configs
  namespace: kube-system
  labels: {app.kubernetes.io/name: nvidia-device-plugin}
data:
  default: |-
    version: v1
    flags:
      migStrategy: none
    sharing:
      timeSlicing:
        resources:
        - name: nvidia.com/gpu
          replicas: 4
  a100: |-
    version: v1
    flags:
      migStrategy: mixed
""")
    return 4


@pytest.fixture(scope="session")
def karpenter_pool(kubectl, karpenter_crds):
    """Factory: ``karpenter_pool(name, requirements, taints=(), labels={}, consolidate_after="30s")``
    applies an EC2NodeClass and a NodePool whose nodes carry the label ``sandbox-test/pool=<name>``."""
    import yaml

    created = []

    def make(name: str, requirements: list[dict], taints=(), labels=None, consolidate_after: str = "30s",
             limits: dict | None = None) -> str:
        nodeclass = {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": name},
                     "spec": {"role": "karpenter-node", "amiSelectorTerms": [{"alias": "al2023@latest"}],
                              "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "sandbox"}}],
                              "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "sandbox"}}]}}
        pool = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name},
                "spec": {"template": {"metadata": {"labels": {"sandbox-test/pool": name, **(labels or {})}},
                                      "spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                                "name": name},
                                               "requirements": requirements, "taints": list(taints)}},
                         "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": consolidate_after},
                         **({"limits": limits} if limits else {})}}
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all([nodeclass, pool]))
        created.append(name)
        return name

    yield make
    for name in created:
        kubectl("delete", "nodepool", name, "--ignore-not-found", "--wait=false", check=False)
        kubectl("delete", "ec2nodeclass", name, "--ignore-not-found", "--wait=false", check=False)


# --- `runbook` in a subprocess (the reliability checks, the fault matrix) ----------------------

class RunbookProcess:
    """``runbook <args>`` in a subprocess with the current environment, its output collected as it
    streams, and the processes it started (kernel, terraform) at hand to be killed."""

    def __init__(self, *args: str):
        import subprocess
        import sys
        import threading

        self.process = subprocess.Popen([sys.executable, "-m", "eks_hub_runbook.cli", *args], cwd=REPO_ROOT,
                                        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait(self, timeout: float = 1800) -> int:
        import subprocess

        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"runbook did not finish in {timeout:.0f} s:\n{self.output[-5000:]}") from None
        self._reader.join(timeout=10)
        return code

    def wait_for(self, predicate, what: str, timeout: float = 900, every: float = 1.0) -> None:
        """Until ``predicate()``, checked every ``every`` s; the runbook ending first is an error."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"runbook ended before {what}:\n{self.output[-5000:]}")
            if predicate():
                return
            time.sleep(every)
        self.process.kill()
        raise AssertionError(f"timed out waiting for {what}:\n{self.output[-5000:]}")

    def descendants(self, word: str) -> list:
        """The processes under it with ``word`` early in their command line (the kernel:
        ``python -Xfrozen_modules=off -m ipykernel_launcher``; ``terraform``)."""
        import psutil

        found = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if any(word in part for part in child.cmdline()[:5]):
                    found.append(child)
            except psutil.NoSuchProcess:
                continue
        return found

    def kernel(self):
        """Its notebook kernel, or None."""
        kernels = self.descendants("ipykernel")
        return kernels[0] if kernels else None

    def kill_terraform(self) -> int:
        """SIGKILL the terraform it runs (not SIGINT: no chance to write its state); how many."""
        import signal

        applying = [p for p in self.descendants("terraform") if p.name() == "terraform"]
        assert applying, "no terraform process to kill"
        for process in applying:
            os.kill(process.pid, signal.SIGKILL)
        return len(applying)


@pytest.fixture(scope="session")
def runbook_process():
    """:class:`RunbookProcess`: ``runbook_process("run", "02", ...)``."""
    return RunbookProcess


def local_aws_pid() -> int:
    """The pid of the running local AWS of the current state folder."""
    import eks_hub_sandbox as sandbox

    status = next(s for s in sandbox.status() if s.name == "aws")
    assert status.running and status.pid
    return status.pid


@pytest.fixture(scope="session")
def aws_pid():
    """:func:`local_aws_pid`, for tests that kill the local AWS."""
    return local_aws_pid


# --- diagnostics -----------------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """When a test that uses the session sandbox fails, add what the sandbox looked like:
    which services ran (pid), the tail of each service log, and the files of its folder."""
    outcome = yield
    report = outcome.get_result()
    uses_sandbox = {"kube_sandbox", "full_sandbox", "aws_sandbox"} & set(getattr(item, "fixturenames", ()))
    if not (report.failed and uses_sandbox and SESSION_STATE_DIR):
        return
    try:
        import eks_hub_sandbox as sandbox
    except ImportError:  # the product alone (tests/test_product_alone.py): nothing to describe
        return

    lines = []
    with session_state():
        for status in sandbox.status():
            lines.append(f"{status.name}: {'running pid ' + str(status.pid) if status.running else 'not running'}")
            if status.log.exists():
                tail = status.log.read_text(errors="replace").splitlines()[-15:]
                lines += [f"  | {line}" for line in tail]
        lines.append("files: " + ", ".join(sorted(p.name for p in sandbox.kubeconfig_path().parent.iterdir())))
    report.sections.append(("session sandbox", "\n".join(lines)))


# --- every import resolves (module level and inside functions) ---------------------------

@pytest.fixture
def unresolved_imports():
    """``unresolved_imports(package)``: the imports of a package that do not resolve."""
    return _unresolved_imports


def _unresolved_imports(package: str) -> list[str]:
    """``from X import Y`` / ``import X`` anywhere in ``package``'s modules whose module does not
    exist (a relative import left pointing at a folder the code moved out of)."""
    import ast
    import importlib
    import importlib.util
    import pkgutil

    root = importlib.import_module(package)
    problems = []
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        spec = importlib.util.find_spec(info.name)
        tree = ast.parse(open(spec.origin).read())
        base = info.name if info.ispkg else info.name.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                parts = base.split(".")
                target = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else node.module
                names = [target] if node.module or not node.level else [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                try:
                    found = importlib.util.find_spec(name)
                except (ModuleNotFoundError, ValueError):
                    found = None
                if found is None and not _is_attribute(name):
                    problems.append(f"{info.name}:{node.lineno} imports {name}")
    return problems


def _is_attribute(name: str) -> bool:
    """``from pkg import name`` where name is an attribute of a module, not a module."""
    import importlib

    module, _, attribute = name.rpartition(".")
    try:
        return hasattr(importlib.import_module(module), attribute)
    except ImportError:
        return False
