"""eks_hub_runbook: the library behind the JupyterHub-on-EKS runbooks.

Notebooks in ``runbooks/`` stay thin and call into this package; the ``runbook``
command (``eks_hub_runbook.cli``) drives the same code from a terminal.

Importing it defers a costly third-party import that nothing here uses
(:mod:`eks_hub_runbook.lazyimports`): about a second less in every process that reads or
writes a notebook (the runner, the kernel, plain Python).
"""

from .lazyimports import defer_rfc3987_syntax as _defer_rfc3987_syntax

__version__ = "0.1.0"

_defer_rfc3987_syntax()
