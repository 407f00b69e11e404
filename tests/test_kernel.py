"""The project's kernel remembers every cell it ran, whether or not the client stores history
(papermill does, nbval does not), so the validation cell can see what papermill injected."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jupyter_client.manager import start_new_kernel

from eks_hub_runbook import kernel


def test_make_setup_registered_the_kernel_with_the_extension():
    spec = json.loads((Path(sys.prefix) / "share/jupyter/kernels" / kernel.KERNEL_NAME / "kernel.json").read_text())
    assert f"--ext={kernel.EXTENSION}" in spec["argv"]
    assert spec["argv"][0] == sys.executable


def test_cells_run_without_history_are_remembered():
    manager, client = start_new_kernel(kernel_name=kernel.KERNEL_NAME)
    try:
        for source in ('auth: str = "dummy"  # login', '# Parameters\nauth = "cognito"\n'):
            client.execute_interactive(source, store_history=False, timeout=60)
        outputs = []
        client.execute_interactive("from eks_hub_runbook import kernel\nprint(kernel.executed_cells()[:2])",
                                   store_history=False, timeout=60,
                                   output_hook=lambda msg: outputs.append(msg["content"].get("text", "")))
        assert "['auth: str = \"dummy\"  # login', '# Parameters\\nauth = \"cognito\"\\n']" in "".join(outputs)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_without_the_extension_there_is_no_record():
    assert kernel.executed_cells() is None  # this pytest process is no kernel
