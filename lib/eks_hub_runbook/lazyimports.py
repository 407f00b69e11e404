"""Deferred imports of third-party modules that cost a lot at import and are rarely used.

``jsonschema`` (imported by ``nbformat``, hence by papermill, scrapbook and every record this
project reads or writes, and by ``kubernetes`` through ``kubernetes_validate``) imports
``rfc3987_syntax`` at its own import when it is installed (``jsonschema[format-nongpl]``,
which JupyterLab's ``jupyter-events`` requires). That module compiles 39 Earley parsers
with ``lark`` at import: about a second of CPU in every process that touches a notebook,
for a format check (``iri``) that nothing here uses.

:func:`defer_rfc3987_syntax` puts a stand-in module in its place that loads the real one
the first time anything uses it: jsonschema registers its ``iri`` checkers as before, and a
check that runs gets the real parser. Importing :mod:`eks_hub_runbook` calls it, so the
runner, the kernel (its extension imports this package before the first cell) and plain
Python all get it.

Processes that never import this package (the user's own ``papermill`` command, ``jupyter
nbconvert``) get it from a startup hook: ``python -m eks_hub_runbook.kernel`` (run by ``make
setup``, with the kernel) writes a ``.pth`` file into the environment's site-packages whose one line
imports this package at interpreter start, as ``site`` allows ``.pth`` files to. Setting
``RUNBOOK_EAGER_IMPORTS=1`` turns the hook off for a process.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import sysconfig
import threading
import types
from pathlib import Path
from typing import Any

RFC3987_SYNTAX = "rfc3987_syntax"
STARTUP_HOOK = "eks_hub_runbook_deferred_imports.pth"  # sorts after the editable install's own .pth
EAGER_IMPORTS = "RUNBOOK_EAGER_IMPORTS"  # set (non-empty) to turn the startup hook off

_lock = threading.RLock()


class DeferredModule(types.ModuleType):
    """A stand-in in ``sys.modules`` for a module that is loaded on first use.

    Any attribute that is not the stand-in's own loads the real module (which then replaces
    the stand-in in ``sys.modules``) and is read from it. ``functions`` are names that
    importers take with ``from module import name`` at their own import: the stand-in has
    them as forwarding functions, so taking them loads nothing; calling one does.
    """

    def __init__(self, name: str, spec: Any, functions: tuple[str, ...] = ()):
        super().__init__(name)
        self.__spec__ = spec
        self.__loader__ = getattr(spec, "loader", None)
        self.__file__ = getattr(spec, "origin", None)  # read by module scans (inspect.getmodule): loads nothing
        if getattr(spec, "submodule_search_locations", None) is not None:
            # the import system asks for it on every ``from module import name``: it must load nothing.
            # A submodule imported through it is the real one (the package's __init__ reuses it later).
            self.__path__ = list(spec.submodule_search_locations)
        self.__dict__["_deferred_real"] = None
        for function in functions:
            self.__dict__[function] = self._forwarder(function)

    def _forwarder(self, function: str):
        def forward(*args: Any, **kwargs: Any) -> Any:
            return getattr(self._deferred_load(), function)(*args, **kwargs)

        forward.__name__ = forward.__qualname__ = function
        forward.__doc__ = f"``{self.__name__}.{function}``, loaded on the first call."
        return forward

    def _deferred_load(self) -> types.ModuleType:
        real = self.__dict__["_deferred_real"]
        if real is not None:
            return real
        with _lock:
            real = self.__dict__["_deferred_real"]
            if real is None:
                name = self.__name__
                if sys.modules.get(name) is self:
                    del sys.modules[name]
                try:
                    real = importlib.import_module(name)
                except BaseException:
                    sys.modules.setdefault(name, self)
                    raise
                self.__dict__["_deferred_real"] = real
        return real

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__") and attribute.endswith("__") and attribute != "__all__":
            raise AttributeError(attribute)
        return getattr(self._deferred_load(), attribute)


def is_deferred(name: str) -> bool:
    """Whether ``sys.modules[name]`` is still a stand-in whose real module has not been loaded."""
    module = sys.modules.get(name)
    return isinstance(module, DeferredModule) and module.__dict__["_deferred_real"] is None


def defer(name: str, functions: tuple[str, ...] = ()) -> bool:
    """Put a :class:`DeferredModule` for top-level module ``name`` in ``sys.modules``.

    Does nothing (returns False) when the module is already imported or not installed."""
    with _lock:
        if name in sys.modules or "." in name:
            return False
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return False
        if spec is None:
            return False
        sys.modules[name] = DeferredModule(name, spec, functions)
        return True


def defer_rfc3987_syntax() -> bool:
    """Defer ``rfc3987_syntax`` (see the module's docstring); True when the stand-in was installed."""
    return defer(RFC3987_SYNTAX, functions=("is_valid_syntax",))


def startup_hook_line(package: str = "eks_hub_runbook") -> str:
    """The ``.pth`` line: imports ``package`` (which defers) unless ``RUNBOOK_EAGER_IMPORTS`` is set
    or the package is not installed (an uninstall leaving the file behind stays silent)."""
    return (f"import os, importlib.util; os.environ.get({EAGER_IMPORTS!r}) or "
            f"importlib.util.find_spec({package!r}) is None or __import__({package!r})\n")


def startup_hook_path(site_packages: str | Path | None = None) -> Path:
    """Where the startup hook lives in ``site_packages`` (default: this interpreter's)."""
    return Path(site_packages or sysconfig.get_paths()["purelib"]) / STARTUP_HOOK


def install_startup_hook(site_packages: str | Path | None = None) -> Path:
    """Write the startup hook into ``site_packages`` (default: this interpreter's) and return its path."""
    hook = startup_hook_path(site_packages)
    hook.write_text(startup_hook_line())
    return hook
