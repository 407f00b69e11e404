"""How fast the runbook is, side by side with the bare tools it wraps (issue 8).

``make bench`` (``python -m benchmarks``) measures on a private sandbox (its own
``RUNBOOK_STATE_DIR`` and ``RUNBOOK_OUTPUTS_DIR`` in a temporary folder, stopped and
removed at the end) and writes ``benchmarks/results.md`` and ``benchmarks/results.json``:

1. deploy overhead: 02_deploy through papermill vs the same Terraform stages run bare;
2. destroy overhead: 05_cleanup vs bare ``terraform apply -destroy`` stages;
3. notebook overhead: 00 and 03 plain Python vs papermill vs ``runbook run``;
4. the whole rehearsal, ``runbook run --all``, by notebook and slowest cells;
5. spawn: user-1 cold, user-2 warm, 20 concurrent users;
6. the sandbox cluster's list latency and watch throughput (``kube_bench``).

Modules: ``harness`` (private sandbox, timers, load sampling, result rows), ``tfbare``
(bare Terraform stages), ``tfevents`` (splitting a ``-json`` stream into provider wait
and the rest), ``notebooks`` (one notebook three ways), ``spawn`` (hub API timings),
``suite`` (the phases and items), ``report`` (table, markdown, JSON), ``kube_bench``.
Timings are never asserted in tests; ``tests/test_benchmarks.py`` runs ``--quick``.
"""
