"""``python -m eks_hub_runbook.sandbox.kube --port P --aws-endpoint URL --state-dir DIR --kubeconfig PATH --ca-file PATH``"""

from .server import main

main()
