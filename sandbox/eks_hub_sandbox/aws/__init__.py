"""The sandbox's local AWS: moto's own server app behind a small EKS layer.

- ``eks_catalog``: fixed data real EKS serves (add-on versions, access policies);
- ``eks_state``: the EKS resources moto lacks, kept per (account, region, cluster);
- ``eks_layer``: the WSGI middleware that routes those calls and fixes moto's
  cluster and node-group responses;
- ``faults``: fault injection (``/_sandbox/faults``): the next N matching calls fail with an
  AWS error in the service's protocol (throttling, 503, NotFound right after a create);
- ``moto_fixes``: targeted corrections where moto differs from AWS and Terraform drifts;
- ``server``: builds the app and runs the threaded werkzeug server.

``python -m eks_hub_sandbox.aws_server`` is the runnable entry point.
"""
