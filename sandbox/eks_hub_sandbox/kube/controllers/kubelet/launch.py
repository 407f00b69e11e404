"""PID 1 of a sandbox container: carries out an isolation plan (see ``isolation``) inside the
fresh mount and PID namespaces ``unshare`` made, then runs the container's command as its
child, forwarding signals and reaping orphans, as tini does in an image.

Run as ``python -I -S launch.py -- ARGV`` with the plan (JSON) in the environment variable
``RUNBOOK_SANDBOX_PLAN``; stdlib only. ``--enter`` is the ``kubectl exec`` form: the caller
(``nsenter``) has already joined the container's namespaces, so only the credentials,
the working folder and (with ``RUNBOOK_SANDBOX_TTY=1``) the controlling terminal are set.

The container's root is an overlay of the machine's root (its upper layer a tmpfs of this
start) that the process pivots into; see ``prepare``.
"""

import ctypes
import json
import os
import signal
import sys

PLAN_VARIABLE, TTY_VARIABLE = "RUNBOOK_SANDBOX_PLAN", "RUNBOOK_SANDBOX_TTY"
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC = 0x20, 0x1000, 0x4000
MNT_DETACH = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, 155)
PR_SET_PDEATHSIG, PR_CAPBSET_DROP = 1, 24
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.syscall.argtypes = [ctypes.c_long, ctypes.c_char_p, ctypes.c_char_p]


def _encode(value):
    return None if value is None else os.fsencode(value)


def mount(source, target, fstype=None, flags=0, data=None):
    if _libc.mount(_encode(source), _encode(target), _encode(fstype), flags, _encode(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target} ({fstype or 'bind'}): {os.strerror(error)}")


def bind(fd, target):
    """Bind the file or folder open as ``fd`` (its submounts are not carried along)."""
    source = f"/proc/self/fd/{fd}"
    mount(source, target, None, MS_BIND)


def open_path(path):
    return os.open(path, os.O_PATH | os.O_CLOEXEC)


def in_root(root, path):
    """Where ``path`` of the container lies under ``root``, its symlinks followed inside the
    container (``/var/run -> /run`` must not lead to the machine's /run)."""
    parts = [p for p in path.split("/") if p and p != "."]
    current, hops = "", 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.rsplit("/", 1)[0]
            continue
        candidate = f"{current}/{part}"
        if os.path.islink(root + candidate):
            hops += 1
            if hops > 40:
                raise OSError(40, f"too many levels of symbolic links in {path}")
            link = os.readlink(root + candidate)
            if link.startswith("/"):
                current = ""
            parts = [p for p in link.split("/") if p and p != "."] + parts
            continue
        current = candidate
    return root + current


def make_target(path, is_file):
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    if is_file:
        if not os.path.exists(path):
            open(path, "a").close()
    else:
        os.makedirs(path, exist_ok=True)


def setup_dev(devices, dev):
    """A /dev of the container's own: the harmless device nodes, its own pts and shm."""
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=65536k")
    for name, fd in devices.items():
        make_target(f"{dev}/{name}", True)
        bind(fd, f"{dev}/{name}")
    os.mkdir(f"{dev}/pts")
    mount("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", f"{dev}/ptmx")
    os.mkdir(f"{dev}/shm")
    mount("shm", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{link}")


def pivot_root(new_root):
    """Make ``new_root`` this namespace's root and drop the old one (runc's pivot_root(".", "."))."""
    os.chdir(new_root)
    if _libc.syscall(SYS_PIVOT_ROOT, b".", b".") != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"pivot_root: {os.strerror(error)}")
    if _libc.umount2(b".", MNT_DETACH) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"detaching the old root: {os.strerror(error)}")
    os.chdir("/")


def prepare(plan):
    """Build the container's root in this (new) mount namespace and pivot into it.

    The root is an overlay of the machine's root with an upper layer on a tmpfs of this start
    (so the container writes where it likes and the machine never changes, as a container's
    writable layer); volumes are bound at their mount points (sources are bound to a staging
    folder first: they may live on mounts under the state folders); /home and /tmp are
    fresh; the state folders are covered; the old root, with every mount of the machine, is
    detached at the end."""
    work = "/mnt"  # any folder: in this namespace the tmpfs over it is the container's alone
    mount("container", work, "tmpfs", 0, "mode=700")
    root, stage = f"{work}/root", f"{work}/stage"
    for folder in (f"{work}/upper", f"{work}/work", root, stage):
        os.mkdir(folder, 0o755)
    for i, spec in enumerate(plan["binds"]):
        make_target(f"{stage}/{i}", spec["file"])
        mount(spec["source"], f"{stage}/{i}", None, MS_BIND)
    keeps = {path: open_path(path) for path in plan["keep"] if os.path.exists(path)}
    devices = {name: open_path(f"/dev/{name}") for name in (*DEVICES, *plan.get("devices", []))
               if os.path.exists(f"/dev/{name}")}  # plan["devices"]: a real GPU's files, when the pod got one
    mount("overlay", root, "overlay", 0, f"lowerdir=/,upperdir={work}/upper,workdir={work}/work")
    setup_dev(devices, f"{root}/dev")
    mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("/sys", f"{root}/sys", None, MS_BIND | MS_REC)
    for path in plan["scratch"]:
        mount("tmpfs", f"{root}{path}", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" if path == "/tmp" else "mode=755")
    for path, fd in keeps.items():
        os.makedirs(in_root(root, path), exist_ok=True)
        bind(fd, in_root(root, path))
    for path in plan["hidden"]:
        if os.path.isdir(in_root(root, path)):
            mount("hidden", in_root(root, path), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "mode=755,size=4k")
    for i, spec in sorted(enumerate(plan["binds"]), key=lambda item: len(item[1]["target"])):
        target = in_root(root, spec["target"])
        make_target(target, spec["file"])
        mount(f"{stage}/{i}", target, None, MS_BIND)
        if spec["read_only"]:
            mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    for fd in [*keeps.values(), *devices.values()]:
        os.close(fd)
    pivot_root(root)
    for path in plan["traverse"]:  # changed in the container's layer only
        if os.path.isdir(path):
            os.chmod(path, os.stat(path).st_mode & 0o7777 | 0o011)
    for path in (plan.get("home"), plan["cwd"]):
        if path and not os.path.isdir(path):
            os.makedirs(path)
            os.chown(path, plan["uid"], plan["gid"])


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
