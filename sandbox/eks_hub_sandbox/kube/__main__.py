"""``python -m eks_hub_sandbox.kube --port P --aws-endpoint URL --state-dir DIR --kubeconfig PATH --ca-file PATH``"""

from .server import main

main()
