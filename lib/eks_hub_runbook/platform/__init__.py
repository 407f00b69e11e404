"""The platform layer: Helm values and Kubernetes manifests, defined once under
``terraform/`` and installed by the deployment's target: on EKS with helm and server-side
apply (``install.install_helm``); a stand-in target applies the same manifests and values
its own way.

Modules:

- ``templating``: ``${name}`` placeholders in YAML files, deep merge (helm semantics)
- ``outputs``: the Terraform outputs the platform reads, normalised and checked
- ``values``: the z2jh values for a deployment (base + login + exposure overlays)
- ``manifests``: NodePools, EC2NodeClasses, storage, service account, device-plugin config
- ``charts``: the pinned install plan in ``terraform/charts.yaml``
- ``instances``: what a node of each instance type offers pods (the overhead model; the
  catalog itself is ``eks_hub_runbook.instance_types``)
- ``facts``: names and constants the checks read from the configuration (pools, claims,
  storage classes, the device plugin's configs, the default profile)
- ``scheduling``: does a pod fit a NodePool (selectors, affinity, taints, resources)
- ``hubconfig``: the z2jh chart's values -> traitlets translation (a local hub, tests)
- ``install``: ``install(params, outputs, kubeconfig)`` through the target; helm on EKS
"""
