"""One pod's life on its node, as the kubelet runs it: volumes, image pulls, init
containers, containers as local processes with restarts and back-off, readiness,
status reporting, graceful termination, and removal from the API when done."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ...objects import now, random_hex, set_condition
from ... import gpus
from . import isolation, network, processes
from .commands import Command, ContainerConfigError, container_env, process_env, resolve, service_env
from .images import image_id
from .volumes import VolumeNotReady, build_rootfs, efs_file_systems, prepare_volumes

if TYPE_CHECKING:
    from .controller import Kubelet

log = logging.getLogger(__name__)

PODS = ("", "pods")
PLACEHOLDER = [sys.executable, "-c", "import signal; signal.sigwait({signal.SIGTERM, signal.SIGINT})"]
BACKOFF_START, BACKOFF_MAX = 10.0, 300.0
PROBE_INTERVAL = 0.2
# Nodes are machines of their own on EKS: the user servers on Karpenter's nodes never take CPU from
# the hub and the proxy on the core node, nor from the control plane. Here every node shares this
# machine's cores, so the processes of pods on Karpenter's nodes run at a lower CPU priority (nice);
# among themselves they share as pods on one node do.
KARPENTER_NODE_LABEL = "karpenter.sh/nodepool"
WORKLOAD_NICENESS = 19


class PodWorker:
    def __init__(self, kubelet: "Kubelet", pod: dict, node: dict):
        self.kubelet = kubelet
        self.cluster = kubelet.cluster
        self.pod = pod
        self.node_name = node["metadata"]["name"]
        self.niceness = WORKLOAD_NICENESS if KARPENTER_NODE_LABEL in (node["metadata"].get("labels") or {}) else 0
        self.host_ip = next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                             if a.get("type") == "InternalIP"), "10.1.0.1")
        self.uid = pod["metadata"]["uid"]
        self.namespace, self.name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self.pod_dir = kubelet.pods_dir / f"{self.namespace}_{self.name}_{self.uid}"
        self.pod_ip: str | None = None
        self.processes: dict[str, processes.ContainerProcess] = {}
        self.statuses: dict[str, dict] = {}
        self.init_statuses: dict[str, dict] = {}
        self.phase = "Pending"
        self.initialized = False
        self.started_at: str | None = None
        self.terminating = False
        self._task: asyncio.Task | None = None
        self._termination: asyncio.Task | None = None
        self._containers: list[asyncio.Task] = []
        # what ``kubectl exec`` and ``kubectl logs --previous`` need: each container's process
        # environment and working folder, and where each of its runs starts in its log file
        self.contexts: dict[str, tuple[dict[str, str], Path]] = {}
        self.plans: dict[str, isolation.Plan] = {}
        self.volume_paths: dict[str, Path] = {}
        self.efs_volumes: dict[str, str] = {}  # volume name -> its EFS file system
        self.log_starts: dict[str, list[int]] = {}

    # -- control ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"pod-{self.namespace}/{self.name}")

    def update(self, pod: dict) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp") and not self.terminating:
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            grace = float(grace if grace is not None else (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            self.terminate(grace, remove=True)

    def terminate(self, grace: float, remove: bool) -> asyncio.Task:
        """Stop every container (SIGTERM, then SIGKILL after ``grace``) and finish the pod."""
        if self._termination is None:
            self.terminating = True
            self._termination = asyncio.get_running_loop().create_task(self._terminate(grace, remove))
        return self._termination

    async def _terminate(self, grace: float, remove: bool) -> None:
        for task in [self._task, *self._containers]:
            if task and not task.done():
                task.cancel()
        for task in [self._task, *self._containers]:
            if task:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        stops = []
        for name, process in self.processes.items():
            if process.returncode is None:
                self.cluster.record_event(self.pod, "Killing", f"Stopping container {name}", component="kubelet",
                                          host=self.node_name, field_path=f"spec.containers{{{name}}}")
            stops.append(processes.terminate(process, grace))
        await asyncio.gather(*stops, return_exceptions=True)
        self.kubelet.release(self)
        if remove:
            current = self.cluster.store.get(PODS, self.namespace, self.name)
            if current is not None and current["metadata"]["uid"] == self.uid:
                self.cluster.remove(PODS, self.namespace, self.name)
        shutil.rmtree(self.pod_dir / "containers", ignore_errors=True)

    # -- status -------------------------------------------------------------------------------------
    def _container_status(self, container: dict, state: dict, ready: bool = False, restarts: int = 0,
                          last: dict | None = None, container_id: str | None = None) -> dict:
        status = {"name": container["name"], "state": state, "lastState": last or {}, "ready": ready,
                  "restartCount": restarts, "image": container.get("image", ""),
                  "imageID": image_id(container.get("image", "")) if container_id else "",
                  "started": "running" in state}
        if container_id:
            status["containerID"] = container_id
        return status

    def publish(self) -> None:
        spec = self.pod.get("spec") or {}
        containers = spec.get("containers") or []
        statuses = [self.statuses.get(c["name"]) or self._container_status(
            c, {"waiting": {"reason": "ContainerCreating" if self.initialized else "PodInitializing"}})
            for c in containers]
        all_ready = bool(statuses) and all(s["ready"] for s in statuses)
        phase, initialized, started_at, pod_ip = self.phase, self.initialized, self.started_at, self.pod_ip
        init_statuses = [self.init_statuses[c["name"]] for c in spec.get("initContainers") or []
                         if c["name"] in self.init_statuses]

        def write(pod: dict):
            if pod["metadata"]["uid"] != self.uid:
                return False
            status = pod.setdefault("status", {})
            status["phase"] = phase
            status["hostIP"] = self.host_ip
            status["hostIPs"] = [{"ip": self.host_ip}]
            if pod_ip:
                status["podIP"] = pod_ip
                status["podIPs"] = [{"ip": pod_ip}]
            if started_at:
                status["startTime"] = started_at
            status["containerStatuses"] = statuses
            if init_statuses:
                status["initContainerStatuses"] = init_statuses
            set_condition(status, "PodReadyToStartContainers", "True" if pod_ip else "False")
            set_condition(status, "Initialized", "True" if initialized else "False",
                          "" if initialized else "ContainersNotInitialized")
            reason = "" if all_ready else ("PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady")
            message = "" if all_ready or reason == "PodCompleted" else \
                f"containers with unready status: [{' '.join(s['name'] for s in statuses if not s['ready'])}]"
            set_condition(status, "Ready", "True" if all_ready else "False", reason, message)
            set_condition(status, "ContainersReady", "True" if all_ready else "False", reason, message)
            order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
            status["conditions"].sort(key=lambda c: order.index(c["type"]) if c["type"] in order else len(order))
            for cond in status["conditions"]:
                cond.setdefault("lastProbeTime", None)
        if not self.terminating or phase in ("Succeeded", "Failed"):
            self.cluster.mutate(PODS, self.namespace, self.name, write)

    def event(self, reason: str, message: str, container: str | None = None, type_: str = "Normal",
              section: str = "containers") -> None:
        self.cluster.record_event(self.pod, reason, message, type_, component="kubelet", host=self.node_name,
                                  field_path=f"spec.{section}{{{container}}}" if container else "")

    # -- running ------------------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            volume_paths = await self._wait_for_volumes()
            self.pod_ip = self.kubelet.addresses.allocate() if not (self.pod.get("spec") or {}).get("hostNetwork") \
                else self.host_ip
            self.started_at = now()
            self.publish()
            for container in (self.pod.get("spec") or {}).get("initContainers") or []:
                if not await self._run_init(container, volume_paths):
                    return
            self.initialized = True
            self.publish()
            self._containers = [asyncio.get_running_loop().create_task(self._supervise(c, volume_paths))
                                for c in (self.pod.get("spec") or {}).get("containers") or []]
            results = await asyncio.gather(*self._containers)
            self.phase = "Succeeded" if all(code == 0 for code in results) else "Failed"
            self.publish()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("kubelet: pod %s/%s failed", self.namespace, self.name)

    async def _wait_for_volumes(self) -> dict[str, Path]:
        reported = None
        while True:
            try:
                self.volume_paths = await prepare_volumes(self.kubelet.runtime, self.pod, self.node_name, self.pod_dir)
                self.efs_volumes = efs_file_systems(self.cluster.store, self.pod)
                return self.volume_paths
            except VolumeNotReady as exc:
                message = f"Unable to attach or mount volumes: {exc}"
                if message != reported:
                    self.event("FailedMount", message, type_="Warning")
                    reported = message
                    self.publish()
                await self.kubelet.volume_changes(timeout=2.0)

    async def _prepare(self, container: dict, volume_paths: dict[str, Path], section: str
                       ) -> tuple[Command, dict[str, str], Path, Path]:
        name = container["name"]
        await self.kubelet.images.ensure(self.pod, container, self.node_name, f"spec.{section}{{{name}}}")
        # the downward API's status.podIP is known here before the API has it
        pod = {**self.pod, "status": {**(self.pod.get("status") or {}), "podIP": self.pod_ip,
                                      "podIPs": [{"ip": self.pod_ip}]}}
        while True:
            try:
                env = container_env(pod, container, self.cluster.store,
                                    service_env(self.pod, self.cluster.store, self.kubelet.marker))
                device_env, devices = self.kubelet.allocate_devices(self.pod, container, self.node_name)
                env.update(device_env)  # what the device plugin's Allocate sets wins over the spec
                break
            except ContainerConfigError as exc:
                self.statuses[name] = self._container_status(
                    container, {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}})
                self.event("Failed", f"Error: {exc}", name, "Warning", section)
                self.publish()
                await asyncio.sleep(2.0)
        env.setdefault("HOME", "/home/jovyan" if env.get("JUPYTERHUB_API_TOKEN") else "/root")
        isolated = self.kubelet.isolated
        rootfs = build_rootfs(self.pod_dir, container, volume_paths, env,
                              (self.pod.get("spec") or {}).get("volumes"), materialize=not isolated)
        command = resolve(container, env, self.pod_ip or "127.0.0.1")
        markers = {processes.CLUSTER_MARKER: self.kubelet.marker, processes.POD_MARKER: self.uid}
        if isolated:  # paths are the container's own: its mounts are real
            home, workdir = env["HOME"], container.get("workingDir") or env["HOME"]
            full_env = process_env(env, self.pod, home, self.pod_ip or "127.0.0.1", self.kubelet.api_host,
                                   self.kubelet.api_port, markers)
            self.plans[name] = await self._plan(container, rootfs, command, home, workdir)
            self.plans[name].devices = gpus.device_files(devices)
        else:
            home = rootfs.host_path(env["HOME"])
            home.mkdir(parents=True, exist_ok=True)
            workdir = rootfs.host_path(container["workingDir"]) if container.get("workingDir") else home
            workdir.mkdir(parents=True, exist_ok=True)
            if command.argv:
                command.argv = command.argv[:1] + [rootfs.localize(arg) for arg in command.argv[1:]]
            full_env = process_env({k: rootfs.localize(v) for k, v in env.items()}, self.pod, home,
                                   self.pod_ip or "127.0.0.1", self.kubelet.api_host, self.kubelet.api_port, markers)
            if env.get("JUPYTERHUB_ROOT_DIR", "").startswith("/"):
                # the hub's notebook_dir (e.g. /home) is a container path, like HOME: map it into the
                # pod's root folder, or the file browser would show the machine's own folder
                full_env["JUPYTERHUB_ROOT_DIR"] = str(rootfs.host_path(env["JUPYTERHUB_ROOT_DIR"]))
        self.contexts[name] = (full_env, workdir)
        return command, full_env, workdir, self.kubelet.log_path(self.pod, name)

    async def _plan(self, container: dict, rootfs, command: Command, home: str, workdir: str) -> isolation.Plan:
        """The container's isolation plan, its EFS volumes seen through the node's mounts."""
        efs = await self._efs_views()
        binds = []
        for target, source in rootfs.mounts.items():
            view = source
            for folder, mounted in efs.items():
                if source == folder or folder in source.parents:
                    view = mounted / source.relative_to(folder)
            binds.append(isolation.Bind(str(view), target, target in rootfs.read_only, source.is_file()))
        return isolation.plan(binds, isolation.credentials(self.pod, container), workdir, home,
                              [(command.argv or PLACEHOLDER)[0], sys.executable], self.kubelet.hidden_roots,
                              self.kubelet.keep_roots)

    async def _efs_views(self) -> dict[Path, Path]:
        """This pod's EFS volume folders -> where the node has them mounted."""
        views = {}
        for volume in (self.pod.get("spec") or {}).get("volumes") or []:
            folder = self.volume_paths.get(volume["name"])
            file_system = self.efs_volumes.get(volume["name"])
            if folder is not None and file_system:
                views[folder] = await self.kubelet.mounts.efs(folder, file_system)
        return views

    async def _start(self, container: dict, command: Command, env: dict, workdir: Path, log_path: Path,
                     section: str) -> processes.ContainerProcess:
        name = container["name"]
        argv = command.argv
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as handle:
            self.log_starts.setdefault(name, []).append(handle.tell())
            if argv is None:
                handle.write(f"[sandbox] {command.note}; running an idle placeholder process instead\n".encode())
                argv = PLACEHOLDER
            else:
                handle.write(f"[sandbox] running {' '.join(argv)} on {self.pod_ip} in {workdir}\n".encode())
        plan = self.plans.get(name)
        self.event("Created", f"Created container: {name}", name, section=section)
        if plan is not None:
            env = {**env, isolation.PLAN_VARIABLE: plan.to_json()}
            process = await processes.spawn(isolation.launch_argv(argv, self.kubelet.mounts.pid), env, Path("/"),
                                            log_path, self.niceness)
        else:
            process = await processes.spawn(argv, env, workdir, log_path, self.niceness)
        self.processes[name] = process
        self.event("Started", f"Started container {name}", name, section=section)
        return process

    async def _run_init(self, container: dict, volume_paths: dict[str, Path]) -> bool:
        name = container["name"]
        restarts = 0
        while True:
            self.init_statuses[name] = self._container_status(container, {"waiting": {"reason": "PodInitializing"}})
            command, env, workdir, log_path = await self._prepare(container, volume_paths, "initContainers")
            if command.argv is None:  # nothing to run locally: an init step of a system image succeeds
                log_path.parent.mkdir(parents=True, exist_ok=True)
                with open(log_path, "ab") as handle:
                    handle.write(f"[sandbox] {command.note}; init container treated as completed\n".encode())
                self.init_statuses[name] = self._container_status(
                    container, {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now(), "finishedAt": now()}},
                    restarts=restarts, container_id=f"containerd://{random_hex(64)}")
                self.publish()
                return True
            started = now()
            process = await self._start(container, command, env, workdir, log_path, "initContainers")
            container_id = f"containerd://{random_hex(64)}"
            self.init_statuses[name] = self._container_status(container, {"running": {"startedAt": started}},
                                                              restarts=restarts, container_id=container_id)
            self.publish()
            code = await process.wait()
            terminated = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                         "startedAt": started, "finishedAt": now(), "containerID": container_id}}
            self.init_statuses[name] = self._container_status(container, terminated, restarts=restarts,
                                                              container_id=container_id)
            if code == 0:
                self.publish()
                return True
            if (self.pod.get("spec") or {}).get("restartPolicy") == "Never":
                self.phase = "Failed"
                self.publish()
                return False
            restarts += 1
            delay = min(BACKOFF_START * 2 ** (restarts - 1), BACKOFF_MAX)
            self.init_statuses[name] = self._container_status(
                container, {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off {int(delay)}s restarting "
                            f"failed container={name} pod={self.name}_{self.namespace}({self.uid})"}},
                restarts=restarts, last=terminated, container_id=container_id)
            self.event("BackOff", "Back-off restarting failed container", name, "Warning", "initContainers")
            self.publish()
            await asyncio.sleep(delay)

    async def _supervise(self, container: dict, volume_paths: dict[str, Path]) -> int:
        """Run one container, restarting it per the pod's restartPolicy. Returns its final exit code."""
        name = container["name"]
        restarts = 0
        last: dict = {}
        while True:
            command, env, workdir, log_path = await self._prepare(container, volume_paths, "containers")
            started = now()
            process = await self._start(container, command, env, workdir, log_path, "containers")
            container_id = f"containerd://{random_hex(64)}"
            self.statuses[name] = self._container_status(container, {"running": {"startedAt": started}},
                                                         restarts=restarts, last=last, container_id=container_id)
            self.phase = "Running"
            self.publish()
            readiness = asyncio.get_running_loop().create_task(
                self._readiness(container, process, command.argv is None, restarts, last, container_id, started))
            code = await process.wait()
            readiness.cancel()
            if self.terminating:
                return code
            terminated = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                         "startedAt": started, "finishedAt": now(), "containerID": container_id}}
            policy = (self.pod.get("spec") or {}).get("restartPolicy", "Always")
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                self.statuses[name] = self._container_status(container, terminated, restarts=restarts, last=last,
                                                             container_id=container_id)
                self.publish()
                return code
            restarts += 1
            last = terminated
            delay = min(BACKOFF_START * 2 ** (restarts - 1), BACKOFF_MAX)
            self.statuses[name] = self._container_status(
                container, {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off {int(delay)}s restarting "
                            f"failed container={name} pod={self.name}_{self.namespace}({self.uid})"}},
                restarts=restarts, last=last, container_id=container_id)
            self.event("BackOff", "Back-off restarting failed container", name, "Warning")
            self.publish()
            await asyncio.sleep(delay)

    async def _readiness(self, container: dict, process, placeholder: bool, restarts: int, last: dict,
                         container_id: str, started: str) -> None:
        probe = container.get("readinessProbe") or {}
        await asyncio.sleep(float(probe.get("initialDelaySeconds") or 0))
        target = None if placeholder else self._probe_target(container, probe)
        while target is not None and process.returncode is None:
            host, port, path = target
            if await _check(host, port, path):
                break
            await asyncio.sleep(PROBE_INTERVAL)
        if process.returncode is not None:
            return
        self.statuses[container["name"]] = self._container_status(
            container, {"running": {"startedAt": started}}, ready=True, restarts=restarts, last=last,
            container_id=container_id)
        self.publish()

    def _probe_target(self, container: dict, probe: dict) -> tuple[str, int, str | None] | None:
        ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}

        def port_of(value) -> int | None:
            if isinstance(value, int):
                return value
            if isinstance(value, str) and value.isdigit():
                return int(value)
            return ports.get(value)
        if probe.get("httpGet"):
            port = port_of(probe["httpGet"].get("port"))
            return (self.pod_ip, port, probe["httpGet"].get("path") or "/") if port else None
        if probe.get("tcpSocket"):
            port = port_of(probe["tcpSocket"].get("port"))
            return (self.pod_ip, port, None) if port else None
        if probe:
            return None  # exec probes cannot run inside an image here: treated as passing
        first = next((p.get("containerPort") for p in container.get("ports") or [] if p.get("protocol", "TCP") == "TCP"), None)
        return (self.pod_ip, first, None) if first else None


async def _check(host: str, port: int, path: str | None) -> bool:
    """Something listens at ``host:port`` (a TCP probe, read from the machine's socket table), or an
    HTTP GET answers 2xx/3xx when ``path`` is given."""
    if path is None:
        return network.listening(host, port)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 2.0)
        parts = line.split()
        return len(parts) >= 2 and parts[1][:1] in (b"2", b"3")
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()
