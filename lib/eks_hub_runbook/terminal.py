"""Plain-text tables for the terminal (the ``runbook`` command and the targets' own commands)."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def print_table(rows: Sequence[dict], echo: Callable[[str], None] = print) -> None:
    """Rows as left-aligned columns under upper-case headers (nothing for no rows)."""
    if not rows:
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    echo("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        echo("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
