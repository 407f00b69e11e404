"""The project's notebook kernel: IPython with one small extension that remembers what it ran.

The validation cell needs to know which names papermill injected (to refuse the ones the
notebook does not take) and what the notebook's parameters cell declares. Both are cells
the kernel executed before it; IPython's ``In`` keeps them only when the client asks it
to (papermill does, nbval does not), so this extension records the source of every cell
at ``pre_run_cell``, whatever the client.

``make setup`` registers the kernel (``python -m eks_hub_runbook.kernel``): the
``python3`` kernelspec of the virtual environment, with ``--ext`` loading this module. The same
command installs :mod:`.lazyimports`' startup hook, so the user's own ``papermill`` command
starts without building parsers nothing uses.
Without it (another kernel), :func:`executed_cells` is None and ``In`` is used instead.
It lives at the package's top (not in ``notebook/``) so loading it imports nothing else.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KERNEL_NAME = "python3"  # the name the runbooks' metadata asks for
DISPLAY_NAME = "Python 3 (eks-hub-runbook)"
EXTENSION = "eks_hub_runbook.kernel"  # this module, as IPython loads it

_executed: list[str] = []
_last_finished: list[float] = []  # time.time() when the last cell before the current one ended
_loaded = False


def load_ipython_extension(ipython) -> None:
    """IPython's entry point (``--ext eks_hub_runbook.kernel``)."""
    global _loaded
    if not _loaded:
        ipython.events.register("pre_run_cell", _remember)
        ipython.events.register("post_run_cell", _finished)
        _loaded = True


def _remember(info) -> None:
    _executed.append(getattr(info, "raw_cell", "") or "")


def _finished(result) -> None:
    import time

    _last_finished[:] = [time.time()]


def last_cell_finished() -> float | None:
    """When the cell before the current one finished (``time.time()``), or None."""
    return _last_finished[0] if _last_finished else None


def executed_cells() -> list[str] | None:
    """The source of every cell this kernel ran so far (the current one last), or None when the
    extension is not loaded."""
    return list(_executed) if _loaded else None


def install(prefix: str = sys.prefix) -> Path:
    """Register the kernel in ``prefix`` (the virtual environment) and return its folder."""
    from ipykernel.kernelspec import install as install_kernelspec

    folder = Path(install_kernelspec(prefix=prefix, kernel_name=KERNEL_NAME, display_name=DISPLAY_NAME))
    spec_file = folder / "kernel.json"
    spec = json.loads(spec_file.read_text())
    extension = f"--ext={EXTENSION}"
    if extension not in spec["argv"]:
        spec["argv"].append(extension)
    spec_file.write_text(json.dumps(spec, indent=1) + "\n")
    return folder


if __name__ == "__main__":
    from .lazyimports import install_startup_hook

    print(f"installed kernel {KERNEL_NAME!r} in {install()}")
    print(f"installed startup hook {install_startup_hook()} (deferred imports for papermill and nbconvert)")
