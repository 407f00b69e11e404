"""PID 1 of a sandbox container: carries out an isolation plan (see ``isolation``) inside the
fresh mount and PID namespaces ``unshare`` made, then runs the container's command as its
child, forwarding signals and reaping orphans, as tini does in an image.

Run as ``python -I -S launch.py -- ARGV`` with the plan (JSON) in the environment variable
``RUNBOOK_SANDBOX_PLAN``; stdlib only. ``--enter`` is the ``kubectl exec`` form: the caller
(``nsenter``) has already joined the container's namespaces, so only the credentials,
the working folder and (with ``RUNBOOK_SANDBOX_TTY=1``) the controlling terminal are set.

Every path a mount needs is opened first (``O_PATH``) and mounted from ``/proc/self/fd``, so
the order of the mounts cannot hide a source: the sandbox's state folders (where volume
folders live) are detached and covered before the command starts.
"""

import ctypes
import json
import os
import signal
import sys

PLAN_VARIABLE, TTY_VARIABLE = "RUNBOOK_SANDBOX_PLAN", "RUNBOOK_SANDBOX_TTY"
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND = 0x20, 0x1000
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP = 1, 24
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _encode(value):
    return None if value is None else os.fsencode(value)


def mount(source, target, fstype=None, flags=0, data=None):
    if _libc.mount(_encode(source), _encode(target), _encode(fstype), flags, _encode(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target} ({fstype or 'bind'}): {os.strerror(error)}")


def bind(fd, target, read_only=False):
    """Bind the file or folder open as ``fd`` (its submounts are not carried along)."""
    source = f"/proc/self/fd/{fd}"
    mount(source, target, None, MS_BIND)
    if read_only:
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def open_path(path):
    return os.open(path, os.O_PATH | os.O_CLOEXEC)


def under(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def mount_points():
    points = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            raw = line.split()[4]
            points.append(raw.encode().decode("unicode_escape"))  # \040 etc.
    return points


def detach_under(roots, inclusive=True):
    """Lazily unmount every mount under one of ``roots`` (and at it, when ``inclusive``), deepest first."""
    for point in sorted(set(mount_points()), key=len, reverse=True):
        if any(under(point, root) and (inclusive or point != root) for root in roots):
            if _libc.umount2(_encode(point), MNT_DETACH) != 0 and ctypes.get_errno() not in (22, 2):
                error = ctypes.get_errno()
                raise OSError(error, f"umount {point}: {os.strerror(error)}")


def make_target(path, is_file):
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    if is_file:
        if not os.path.exists(path):
            open(path, "a").close()
    else:
        os.makedirs(path, exist_ok=True)


def setup_dev(devices):
    """A /dev of the container's own: the harmless device nodes, its own pts and shm."""
    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID, "mode=755,size=65536k")
    for name, fd in devices.items():
        make_target(f"/dev/{name}", True)
        bind(fd, f"/dev/{name}")
    os.mkdir("/dev/pts")
    mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", "/dev/ptmx")
    os.mkdir("/dev/shm")
    mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{link}")


def private_overlays(folders):
    """Each folder gets an overlay whose upper layer is on a tmpfs of this start only: the
    container writes there, the machine's folder never changes."""
    if not folders:
        return
    layer = "/dev/.layer"
    os.mkdir(layer)
    mount("layer", layer, "tmpfs", 0, "mode=700")
    for i, path in enumerate(folders):
        upper, work = f"{layer}/u{i}", f"{layer}/w{i}"
        info = os.stat(path)
        os.mkdir(upper)
        os.mkdir(work)
        os.chown(upper, info.st_uid, info.st_gid)
        os.chmod(upper, info.st_mode & 0o7777)
        mount("overlay", path, "overlay", 0, f"lowerdir={path},upperdir={upper},workdir={work}")
    _libc.umount2(_encode(layer), MNT_DETACH)  # the overlays keep it
    os.rmdir(layer)


def prepare(plan):
    """Build the container's file system view in this (new) mount namespace. Volumes are
    bound to a staging folder in the container's /dev first: their sources may live on
    mounts under the state folders, which are detached before the view is made."""
    sources = {i: open_path(b["source"]) for i, b in enumerate(plan["binds"])}
    keeps = {path: open_path(path) for path in plan["keep"] if os.path.exists(path)}
    devices = {name: open_path(f"/dev/{name}") for name in DEVICES if os.path.exists(f"/dev/{name}")}
    detach_under(["/dev"], inclusive=False)
    setup_dev(devices)
    stage = "/dev/.stage"
    os.mkdir(stage, 0o700)
    for i, spec in enumerate(plan["binds"]):
        make_target(f"{stage}/{i}", spec["file"])
        bind(sources[i], f"{stage}/{i}")
    detach_under([*plan["hidden"], *plan["scratch"]])
    # the machine's files are read-only here: every folder the container writes in (mount
    # points too) is an overlay, a tmpfs or a volume, so a wrong plan fails, never writes
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    private_overlays(plan["private"])
    for path in plan["scratch"]:
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" if path == "/tmp" else "mode=755")
    for path, fd in keeps.items():
        os.makedirs(path, exist_ok=True)
        bind(fd, path)
    for path in plan["hidden"]:
        if os.path.isdir(path):
            mount("hidden", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=4k")
    for i, spec in sorted(enumerate(plan["binds"]), key=lambda item: len(item[1]["target"])):
        make_target(spec["target"], spec["file"])
        mount(f"{stage}/{i}", spec["target"], None, MS_BIND)
        if spec["read_only"]:
            mount(None, spec["target"], None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    detach_under([stage])
    for i, spec in enumerate(plan["binds"]):
        (os.unlink if spec["file"] else os.rmdir)(f"{stage}/{i}")
    os.rmdir(stage)
    for path in plan["traverse"]:
        if os.path.isdir(path):
            os.chmod(path, os.stat(path).st_mode & 0o7777 | 0o011)
    for path in (plan.get("home"), plan["cwd"]):
        if path and not os.path.isdir(path):
            os.makedirs(path)
            os.chown(path, plan["uid"], plan["gid"])
    for fd in [*sources.values(), *keeps.values(), *devices.values()]:
        os.close(fd)


def become(plan):
    """Take the container's credentials: capabilities outside the plan's set dropped, then the
    user and groups (a non-root user keeps no capability)."""
    keep = set(plan["capabilities"])
    with open("/proc/sys/kernel/cap_last_cap") as handle:
        last = int(handle.read())
    for capability in range(last + 1):
        if capability not in keep:
            _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)
    os.setgroups(plan["groups"])
    os.setresgid(plan["gid"], plan["gid"], plan["gid"])
    os.setresuid(plan["uid"], plan["uid"], plan["uid"])


def enter_directory(path):
    try:
        os.chdir(path)
    except OSError:
        os.chdir("/")


def run_as_init(plan, argv, env):
    """Fork the command, forward signals to it, reap every child, exit as it exits."""
    watched = {*FORWARDED, signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    child = os.fork()
    if child == 0:
        try:
            os.setpgid(0, 0)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            enter_directory(plan["cwd"])
            become(plan)
            os.execvpe(argv[0], argv, env)
        except BaseException as exc:  # noqa: BLE001 - reported as the container's error
            os.write(2, f"[sandbox] cannot start {argv[0]}: {exc}\n".encode())
        os._exit(127)
    while True:
        info = signal.sigwaitinfo(watched)
        if info.si_signo != signal.SIGCHLD:
            try:
                os.kill(child, info.si_signo)
            except ProcessLookupError:
                pass
            continue
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                sys.exit(1)
            if pid == 0:
                break
            if pid == child:
                sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


def enter(plan, argv, env):
    """``kubectl exec``: already in the namespaces; become the container's user and run."""
    if os.environ.get(TTY_VARIABLE) == "1":
        import fcntl
        import termios
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 1)
    enter_directory(plan["cwd"])
    become(plan)
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.execvpe(argv[0], argv, env)


def hold(empty):
    """The node's mount namespace: mount or unmount what each line on stdin asks, reply on
    stdout, until stdin closes (the kubelet is gone)."""
    os.makedirs(empty, exist_ok=True)
    mount("empty", empty, "tmpfs", MS_RDONLY, "mode=755,size=4k")
    lower = empty
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "mount":
                for path in (request["target"], request["work"]):
                    os.makedirs(path, exist_ok=True)
                mount(request["name"], request["target"], "overlay", 0,
                      f"lowerdir={lower},upperdir={request['upper']},workdir={request['work']}")
            else:
                _libc.umount2(_encode(request["target"]), MNT_DETACH)
            reply = "ok"
        except OSError as exc:
            reply = f"error {exc}"
        sys.stdout.write(reply + "\n")
        sys.stdout.flush()


def main(args):
    if args[:1] == ["--hold"]:
        hold(args[1])
        return
    entering = args[:1] == ["--enter"]
    if entering:
        args = args[1:]
    if args[:1] != ["--"] or len(args) < 2:
        sys.exit("usage: launch.py [--enter] -- COMMAND [ARG...]")
    argv = args[1:]
    plan = json.loads(os.environ[PLAN_VARIABLE])
    env = {k: v for k, v in os.environ.items() if k not in (PLAN_VARIABLE, TTY_VARIABLE)}
    if entering:
        enter(plan, argv, env)
        return
    try:
        prepare(plan)
    except OSError as exc:
        sys.exit(f"[sandbox] cannot set up the container's mounts: {exc}")
    run_as_init(plan, argv, env)


if __name__ == "__main__":
    main(sys.argv[1:])
