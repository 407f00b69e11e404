"""RBAC for service accounts: bound roles allow, everything else is forbidden."""

from __future__ import annotations

from eks_hub_sandbox.hub_chart import HUB_ROLE_RULES
from eks_hub_sandbox.kube import rbac
from eks_hub_sandbox.kube.auth import ADMIN, Identity
from eks_hub_sandbox.kube.store import Store

HUB = Identity("system:serviceaccount:jupyterhub:hub")
SINGLEUSER = Identity("system:serviceaccount:jupyterhub:jupyterhub-singleuser")


def _store() -> Store:
    store = Store()
    store.put(rbac.ROLES, {"metadata": {"namespace": "jupyterhub", "name": "hub"}, "rules": HUB_ROLE_RULES})
    store.put(rbac.ROLE_BINDINGS, {"metadata": {"namespace": "jupyterhub", "name": "hub"},
                                   "subjects": [{"kind": "ServiceAccount", "name": "hub", "namespace": "jupyterhub"}],
                                   "roleRef": {"kind": "Role", "name": "hub"}})
    store.put(rbac.CLUSTER_ROLES, {"metadata": {"name": "node-reader"}, "rules": [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"], "resourceNames": ["node-a"]}]})
    store.put(rbac.CLUSTER_ROLE_BINDINGS, {"metadata": {"name": "node-reader"}, "subjects": [
        {"kind": "ServiceAccount", "name": "hub", "namespace": "jupyterhub"}], "roleRef": {"kind": "ClusterRole",
                                                                                     "name": "node-reader"}})
    return store


def test_the_hubs_role_allows_what_kubespawner_does_in_its_namespace_only():
    store = _store()
    for verb in ("create", "get", "list", "watch", "delete"):
        assert rbac.allowed(store, HUB, verb, "", "pods", "jupyterhub", None)
    assert rbac.allowed(store, HUB, "watch", "", "events", "jupyterhub", None)
    assert not rbac.allowed(store, HUB, "create", "", "events", "jupyterhub", None)
    assert not rbac.allowed(store, HUB, "create", "", "pods", "kube-system", None)  # another namespace
    assert not rbac.allowed(store, HUB, "create", "", "pods/exec", "jupyterhub", "jupyter-user-1")  # a subresource
    assert not rbac.allowed(store, HUB, "create", "apps", "deployments", "jupyterhub", None)  # another group


def test_resource_names_and_cluster_bindings():
    store = _store()
    assert rbac.allowed(store, HUB, "get", "", "nodes", None, "node-a")
    assert not rbac.allowed(store, HUB, "get", "", "nodes", None, "node-b")
    assert not rbac.allowed(store, HUB, "list", "", "nodes", None, None)  # resourceNames never match a list


def test_an_unbound_account_may_do_nothing_and_admins_everything():
    store = _store()
    assert not rbac.allowed(store, SINGLEUSER, "get", "", "pods", "jupyterhub", "jupyter-user-1")
    assert rbac.allowed(store, ADMIN, "create", "", "pods/exec", "jupyterhub", "jupyter-user-1")
    assert rbac.denial(SINGLEUSER, "create", "", "pods/exec", "jupyterhub", "jupyter-user-1") == (
        'pods "jupyter-user-1" is forbidden: User "system:serviceaccount:jupyterhub:jupyterhub-singleuser" '
        'cannot create resource "pods" subresource "exec" in API group "" in the namespace "jupyterhub"')


def test_verbs_from_requests():
    assert rbac.verb("GET", {"watch": "true"}, None) == "watch"
    assert (rbac.verb("GET", {}, None), rbac.verb("GET", {}, "x")) == ("list", "get")
    assert (rbac.verb("DELETE", {}, None), rbac.verb("PATCH", {}, "x")) == ("deletecollection", "patch")
