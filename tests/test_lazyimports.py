"""Deferred imports: ``rfc3987_syntax`` (a second of Earley-parser building in every process that
imports jsonschema) is loaded only when a check uses it, and then gives the same answers; the
``notebook`` package loads its submodules (pandas with ``display``) on first use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from jupyter_client.manager import start_new_kernel

from eks_hub_runbook import kernel, lazyimports

IRIS = ["http://example.com/ä?q=1#f", "not an iri", "urn:isbn:0451450523", "http://[::1]:80/", "", "//x"]


def _python(code: str, eager: bool = True) -> dict:
    """Run ``code`` in a fresh interpreter; ``eager`` turns the venv's startup hook off (as without it)."""
    env = {**os.environ, lazyimports.EAGER_IMPORTS: "1" if eager else ""}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


CHECK = f"""
    import json, sys
    from jsonschema import FormatChecker
    checker = FormatChecker()
    before = "lark" in sys.modules
    answers = [[checker.conforms(v, f) for f in ("iri", "iri-reference")] for v in {IRIS!r}]
    print(json.dumps({{"lark_before_check": before, "answers": answers, "formats": sorted(checker.checkers),
                      "real": type(sys.modules["rfc3987_syntax"]).__name__}}))
"""


def test_importing_the_library_defers_rfc3987_syntax_and_checks_answer_the_same():
    deferred = _python("import eks_hub_runbook\n" + textwrap.dedent(CHECK))
    eager = _python(textwrap.dedent(CHECK))
    assert eager["lark_before_check"] is True  # without the library: built at jsonschema's import
    assert deferred["lark_before_check"] is False
    assert deferred["answers"] == eager["answers"]
    assert {"iri", "iri-reference"} <= set(deferred["formats"])
    assert deferred["formats"] == eager["formats"]
    assert deferred["real"] == "module"  # the stand-in gave way to the real module


def test_papermill_and_scrapbook_import_without_building_the_parser():
    found = _python("""
        import json, sys
        import eks_hub_runbook
        import papermill, scrapbook, nbformat
        from eks_hub_runbook import lazyimports
        print(json.dumps({"lark": "lark" in sys.modules, "deferred": lazyimports.is_deferred("rfc3987_syntax")}))
    """)
    assert found == {"lark": False, "deferred": True}


def test_a_submodule_imported_through_the_stand_in_is_the_real_one():
    found = _python("""
        import json, sys
        import eks_hub_runbook
        import rfc3987_syntax.syntax_helpers as helpers
        from rfc3987_syntax import is_valid_syntax
        print(json.dumps({"name": helpers.__name__, "valid": is_valid_syntax("iri", "http://example.com/"),
                          "invalid": is_valid_syntax("iri", "no iri"),
                          "same": sys.modules["rfc3987_syntax"].syntax_parser is helpers.syntax_parser}))
    """)
    assert found == {"name": "rfc3987_syntax.syntax_helpers", "valid": True, "invalid": False, "same": True}


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throwaway package that counts its imports."""
    root = tmp_path / "deferred_probe_pkg"
    root.mkdir()
    (root / "__init__.py").write_text("import builtins\nbuiltins.deferred_probe_loads = getattr(builtins, 'deferred_probe_loads', 0) + 1\n"
                                      "from .sub import twice\nVALUE = 42\n")
    (root / "sub.py").write_text("def twice(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "deferred_probe_pkg"
    for name in [n for n in sys.modules if n.split(".")[0] == "deferred_probe_pkg"]:
        del sys.modules[name]
    import builtins

    if hasattr(builtins, "deferred_probe_loads"):
        del builtins.deferred_probe_loads


def test_defer_loads_on_first_use_only(package):
    import builtins

    assert lazyimports.defer(package, functions=("twice",)) is True
    from deferred_probe_pkg import twice  # what jsonschema does: takes the function, loads nothing

    assert lazyimports.is_deferred(package) and getattr(builtins, "deferred_probe_loads", 0) == 0
    assert sys.modules[package].__file__.endswith("__init__.py")  # module scans load nothing either
    assert lazyimports.is_deferred(package)
    assert twice(21) == 42
    assert not lazyimports.is_deferred(package) and builtins.deferred_probe_loads == 1
    assert sys.modules[package].VALUE == 42 and type(sys.modules[package]).__name__ == "module"
    assert twice(1) == 2 and builtins.deferred_probe_loads == 1


def test_defer_any_other_attribute_loads_the_module(package):
    assert lazyimports.defer(package) is True
    stand_in = sys.modules[package]
    assert stand_in.VALUE == 42
    assert sys.modules[package] is not stand_in and not lazyimports.is_deferred(package)


def test_defer_leaves_imported_and_missing_modules_alone(package):
    import json as already

    assert lazyimports.defer("json") is False and sys.modules["json"] is already
    assert lazyimports.defer("no_such_module_anywhere_xyz") is False
    assert "no_such_module_anywhere_xyz" not in sys.modules
    assert lazyimports.defer(f"{package}.sub") is False  # top-level modules only


def test_a_failing_real_import_keeps_the_stand_in(package, tmp_path):
    assert lazyimports.defer(package, functions=("twice",)) is True
    (tmp_path / package / "__init__.py").write_text("raise ImportError('broken on purpose')\n")
    with pytest.raises(ImportError, match="broken on purpose"):
        sys.modules[package].twice(1)
    assert lazyimports.is_deferred(package)


HOOKED = """
    import json, site, sys
    site.addsitedir({folder!r})  # processes the folder's .pth files, as at start-up for site-packages
    import papermill.cli, nbformat
    print(json.dumps({{"lark": "lark" in sys.modules, "library": "eks_hub_runbook" in sys.modules}}))
"""


def test_the_startup_hook_defers_it_for_papermill_which_never_imports_the_library(tmp_path):
    hook = lazyimports.install_startup_hook(tmp_path)
    assert hook.name == lazyimports.STARTUP_HOOK and hook.read_text().startswith("import ")
    assert _python(HOOKED.format(folder=str(tmp_path)), eager=False) == {"lark": False, "library": True}
    assert _python(HOOKED.format(folder=str(tmp_path)), eager=True) == {"lark": True, "library": False}


def test_the_startup_hook_is_silent_once_the_package_is_gone(tmp_path):
    (tmp_path / "gone.pth").write_text(lazyimports.startup_hook_line("no_such_package_xyz"))
    code = f"import site, sys, json; site.addsitedir({str(tmp_path)!r}); print(json.dumps('no_such_package_xyz' in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, lazyimports.EAGER_IMPORTS: ""})
    assert done.returncode == 0 and done.stdout.strip() == "false" and done.stderr == ""


def test_setup_installs_the_startup_hook_in_this_environment():
    hook = lazyimports.startup_hook_path()
    assert hook.name == lazyimports.STARTUP_HOOK and hook.read_text() == lazyimports.startup_hook_line(), "make setup (python -m eks_hub_runbook.kernel) writes it"


def test_the_runner_does_not_import_pandas_and_the_notebook_names_still_resolve():
    found = _python("""
        import json, sys
        from eks_hub_runbook.records import runner
        without = "pandas" in sys.modules
        from eks_hub_runbook import notebook as nb
        names = {name: getattr(nb, name).__module__.rsplit(".", 1)[-1] if hasattr(getattr(nb, name), "__module__")
                 else "constant" for name in nb.__all__}
        print(json.dumps({"pandas_in_runner": without, "pandas_after_table": "pandas" in sys.modules,
                          "names": names, "dir": sorted(set(nb.__all__) - set(dir(nb)))}))
    """)
    assert found["pandas_in_runner"] is False
    assert found["pandas_after_table"] is True
    assert found["names"]["table"] == "display" and found["names"]["parameter_form"] == "forms"
    assert found["names"]["archive"] == "record"
    assert found["dir"] == []


def test_an_unknown_notebook_name_is_an_attribute_error():
    from eks_hub_runbook import notebook as nb

    with pytest.raises(AttributeError, match="no attribute 'tabel'"):
        nb.tabel  # noqa: B018


def test_the_kernel_defers_it_before_the_first_cell():
    manager, client = start_new_kernel(kernel_name=kernel.KERNEL_NAME)
    try:
        outputs: list[str] = []
        client.execute_interactive(
            "import sys\nfrom eks_hub_runbook import lazyimports\n"
            "print(lazyimports.is_deferred('rfc3987_syntax'), 'lark' in sys.modules)",
            store_history=False, timeout=60, output_hook=lambda msg: outputs.append(msg["content"].get("text", "")))
        assert "".join(outputs).split() == ["True", "False"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
