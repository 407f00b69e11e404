"""The command-line tools the runbook runs: which ones, how new, and where they come from.

One table (:data:`TOOLS`) serves two readers:

- ``00_prerequisites`` (:mod:`.prerequisites`) checks the versions for the chosen target;
- ``make setup`` runs this file with the system Python, before the virtual environment
  exists (``python3 lib/eks_hub_runbook/tools.py setup``): it installs what Debian's
  archive offers (kubectl from ``kubernetes-client``, Node.js and npm, Chromium with
  ``--browser``) and, before anything else is installed, names what it cannot install
  (terraform: the version needed and the official install page) instead of failing later
  inside a notebook.

Standard library only, so the script works on a bare machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

if __package__:
    from .paths import TERRAFORM_DIR
else:  # run as a script by `make setup`
    TERRAFORM_DIR = Path(__file__).resolve().parents[2] / "terraform"


def version_tuple(text: str) -> tuple[int, ...]:
    """``'1.32.4-dispatcher'`` -> ``(1, 32, 4)``."""
    return tuple(int(part) for part in re.findall(r"\d+", text.split("-", 1)[0])[:3])


def terraform_required_version(versions_tf: Path | None = None) -> tuple[int, ...]:
    """The oldest Terraform the root module accepts: ``required_version = ">= X.Y.Z"`` in versions.tf."""
    path = versions_tf or TERRAFORM_DIR / "versions.tf"
    match = re.search(r'required_version\s*=\s*">=\s*([0-9.]+)"', path.read_text())
    if not match:
        raise ValueError(f"{path} has no required_version = \">= X.Y.Z\"")
    return version_tuple(match.group(1))


def _terraform_version(out: str) -> str:
    return json.loads(out)["terraform_version"]


def _kubectl_version(out: str) -> str:
    return json.loads(out)["clientVersion"]["gitVersion"].lstrip("v")


def first_semver(out: str) -> str:
    """The first ``X.Y[.Z]`` in a tool's version output."""
    match = re.search(r"v?(\d+\.\d+(?:\.\d+)?)", out)
    if not match:
        raise ValueError(f"no version in {out[:80]!r}")
    return match.group(1)


@dataclass(frozen=True)
class Tool:
    """A command-line tool the runbook runs, the oldest version it works with, where to get it.

    ``setup``: ``make setup`` needs it (to install or to run the sandbox); ``debian``: the Debian packages that
    provide it, installed by ``make setup`` when it is missing (empty: not in the archive);
    ``setup_minimum``: an older version fails ``make setup`` (kubectl's does not: any
    version talks to the sandbox, and ``00_prerequisites`` checks it against EKS's).
    """

    name: str
    minimum: Callable[[], tuple[int, ...]]
    argv: tuple[str, ...]
    parse: Callable[[str], str]
    install: str
    setup: bool = False
    debian: tuple[str, ...] = ()
    browser: bool = False
    setup_minimum: bool = True

    @property
    def needed(self) -> str:
        return ">= " + ".".join(map(str, self.minimum()))


TOOLS = (
    Tool("terraform", terraform_required_version, ("terraform", "version", "-json"), _terraform_version,
         "https://developer.hashicorp.com/terraform/install", setup=True),
    Tool("kubectl", lambda: (1, 30), ("kubectl", "version", "--client", "-o", "json"), _kubectl_version,
         "https://kubernetes.io/docs/tasks/tools/", setup=True, debian=("kubernetes-client",), setup_minimum=False),
    Tool("helm", lambda: (3, 12), ("helm", "version", "--short"), first_semver, "https://helm.sh/docs/intro/install/"),
    Tool("node", lambda: (18,), ("node", "--version"), first_semver, "https://nodejs.org/en/download", setup=True,
         debian=("nodejs", "npm")),
    Tool("npm", lambda: (8,), ("npm", "--version"), first_semver,
         "https://docs.npmjs.com/downloading-and-installing-node-js-and-npm", setup=True, debian=("npm",)),
    Tool("chromium", lambda: (120,), ("chromium", "--version"), first_semver,
         "https://www.chromium.org/getting-involved/download-chromium/", debian=("chromium",), browser=True),
)


def tool(name: str) -> Tool:
    """The :data:`TOOLS` entry called ``name``."""
    return next(t for t in TOOLS if t.name == name)


def tool_version(tool: Tool, timeout: float = 30.0) -> str | None:
    """The installed version of ``tool``, or None if it is not on PATH or does not answer."""
    if shutil.which(tool.argv[0]) is None:
        return None
    try:
        proc = subprocess.run(tool.argv, capture_output=True, text=True, timeout=timeout, check=False)
        return tool.parse(proc.stdout or proc.stderr)
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, json.JSONDecodeError):
        return None


def problem(tool: Tool, found: str | None, minimum: tuple[int, ...] | None = None) -> str | None:
    """Why ``found`` does not do (missing, too old), or None when it does."""
    minimum = minimum or tool.minimum()
    if found is None:
        return "not found"
    if version_tuple(found)[: len(minimum)] < minimum:
        return f"{found} is too old"
    return None


# -- make setup ----------------------------------------------------------------------


def _can_apt() -> bool:
    return shutil.which("apt-get") is not None and hasattr(os, "geteuid") and os.geteuid() == 0


def _apt_install(packages: Sequence[str], run: Callable[..., subprocess.CompletedProcess]) -> str | None:
    """Install Debian packages; the error text when apt-get fails."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]):
        proc = run(argv, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout or "").strip().splitlines()
            return lines[-1] if lines else f"exit code {proc.returncode}"
    return None


def setup(browser: bool = False, *, version: Callable[[Tool], str | None] = tool_version,
          can_apt: Callable[[], bool] = _can_apt, run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
          out=sys.stdout, err=sys.stderr) -> int:
    """What ``make setup`` (and ``make test`` with ``browser``) needs on PATH: install the missing
    tools Debian offers, then report. Returns 0 when everything needed is there, else 1 after
    naming each missing tool with the version needed and where to get it."""
    wanted = [t for t in TOOLS if t.setup or (browser and t.browser)]

    def unusable() -> dict[str, str]:
        found = {t.name: version(t) for t in wanted}
        for t in wanted:
            why = problem(t, found[t.name])
            if why and why != "not found" and not t.setup_minimum:
                print(f"setup: note: {t.name} {found[t.name]} is older than {t.needed}: enough for the sandbox; "
                      f"--target aws needs a newer one ({t.install})", file=out)
        return {t.name: why for t in wanted if (why := problem(t, found[t.name]))
                and (why == "not found" or t.setup_minimum)}

    missing = unusable()
    installable = [tool(name) for name, why in missing.items() if why == "not found" and tool(name).debian]
    if installable and can_apt():
        packages = sorted({p for t in installable for p in t.debian})
        print(f"setup: installing from Debian: {' '.join(packages)}", file=out, flush=True)
        error = _apt_install(packages, run)
        if error:
            print(f"setup: apt-get failed: {error}", file=err)
        missing = unusable()
    for name, why in missing.items():
        t = tool(name)
        how = (f"install it (Debian: apt-get install {' '.join(t.debian)}) or see {t.install}" if t.debian
               else f"it is not in a package registry this setup can use: install it from {t.install}")
        print(f"setup: {name} {t.needed} is needed ({why}): {how}", file=err)
    if missing:
        print(f"setup: stopped before installing anything else: {len(missing)} tool(s) missing", file=err)
        return 1
    return 0


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] != "setup" or any(a not in ("--browser",) for a in argv[1:]):
        print("usage: tools.py setup [--browser]", file=sys.stderr)
        return 2
    return setup(browser="--browser" in argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
