"""eks_hub_runbook: the library behind the JupyterHub-on-EKS runbooks.

Notebooks in ``runbooks/`` stay thin and call into this package; the ``runbook``
command (``eks_hub_runbook.cli``) drives the same code from a terminal.
"""

__version__ = "0.1.0"
