"""The sandbox cluster: a Kubernetes API-server emulator with in-process controllers.

Real clients use it unchanged: ``kubectl`` 1.32, the ``kubernetes`` Python client and
KubeSpawner (``kubernetes_asyncio``). Run it with
``python -m eks_hub_sandbox.kube --port P --state-dir DIR ...`` (``runbook sandbox up``
does). Layout:

- ``server`` wires TLS, the admin kubeconfig, the HTTP ``api`` and the controllers;
- ``cluster`` holds the API semantics over the in-memory ``store`` (resourceVersions, watch history);
- ``resources`` (served kinds), ``discovery``, ``tables`` (kubectl columns), ``selectors``,
  ``patch``/``apply`` (PATCH formats), ``validation``/``semantics``/``defaults``/``admission``;
- ``controllers/``: scheduler, Karpenter, device plugins, EFS/EBS CSI, load balancer
  controller, node groups from the local AWS, kubelet (pods as local processes), and more.

State: objects live in memory only (a restart is a fresh cluster; nodes of managed node
groups come back from the local AWS). The state folder keeps the CA and server keys, the
admin token, pod folders and logs, and the local folders behind EFS and EBS volumes.
"""
