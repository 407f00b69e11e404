"""The platform layer: Helm values and Kubernetes manifests, defined once under
``terraform/`` and installed identically on EKS (helm + server-side apply) and in the
sandbox (the same manifests on the cluster emulator, plus a real JupyterHub process).

Modules:

- ``templating``: ``${name}`` placeholders in YAML files, deep merge (helm semantics)
- ``outputs``: the Terraform outputs the platform reads, normalised and checked
- ``values``: the z2jh values for a deployment (base + login + exposure overlays)
- ``manifests``: NodePools, EC2NodeClasses, storage, service account, device-plugin config
- ``charts``: the pinned install plan in ``terraform/charts.yaml``
- ``instances``: EC2 instance catalog used to prove profiles fit their pools
- ``scheduling``: does a pod fit a NodePool (selectors, affinity, taints, resources)
- ``hubconfig``: the z2jh chart's values -> traitlets translation (sandbox hub, tests)
- ``install``: ``install(params, outputs)`` for ``aws`` (helm) and ``sandbox``
- ``sandbox_hub`` / ``oidc``: the sandbox's JupyterHub and OpenID Connect provider
"""
