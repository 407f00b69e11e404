"""RBAC authorization for service accounts, as the API server's RBAC authorizer decides:
a request is allowed when a rule of a Role or ClusterRole bound to the account (by a
RoleBinding in the request's namespace, or a ClusterRoleBinding) matches its verb, API
group, resource (``pods/exec`` for a subresource) and name. Discovery paths are open to
every authenticated identity (``system:discovery``). Admins (the kubeconfig's token, EKS
tokens) are not checked: they are ``system:masters``.
"""

from __future__ import annotations

from .auth import Identity

RBAC = "rbac.authorization.k8s.io"
ROLES, CLUSTER_ROLES = (RBAC, "roles"), (RBAC, "clusterroles")
ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS = (RBAC, "rolebindings"), (RBAC, "clusterrolebindings")
TRUE = ("true", "1")


def verb(method: str, query, name: str | None) -> str:
    """The RBAC verb of a resource request."""
    method = method.upper()
    if method == "GET":
        if query.get("watch", "").lower() in TRUE:
            return "watch"
        return "get" if name else "list"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def _names(subject: dict, namespace: str, name: str) -> bool:
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        return subject.get("name") == name and subject.get("namespace", "") == namespace
    if kind == "Group":
        return subject.get("name") in ("system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                                       "system:authenticated")
    return kind == "User" and subject.get("name") == f"system:serviceaccount:{namespace}:{name}"


def _rule_matches(rule: dict, verb_: str, group: str, resource: str, name: str | None) -> bool:
    def has(values, wanted):
        return "*" in (values or []) or wanted in (values or [])
    return (has(rule.get("verbs"), verb_) and has(rule.get("apiGroups"), group)
            and has(rule.get("resources"), resource)
            and (not rule.get("resourceNames") or (name is not None and name in rule["resourceNames"])))


def allowed(store, identity: Identity, verb_: str, group: str, resource: str, namespace: str | None,
            name: str | None) -> bool:
    """Whether ``identity`` may ``verb_`` the resource (``resource`` includes ``/subresource``)."""
    if identity.admin:
        return True
    account = identity.service_account
    if account is None:
        return False
    account_namespace, account_name = account
    rules: list[dict] = []
    for binding in store.list(CLUSTER_ROLE_BINDINGS):
        if any(_names(s, account_namespace, account_name) for s in binding.get("subjects") or []):
            role = store.get(CLUSTER_ROLES, "", (binding.get("roleRef") or {}).get("name", ""))
            rules += (role or {}).get("rules") or []
    if namespace:
        for binding in store.list(ROLE_BINDINGS, namespace):
            if any(_names(s, account_namespace, account_name) for s in binding.get("subjects") or []):
                ref = binding.get("roleRef") or {}
                role = store.get(ROLES if ref.get("kind") == "Role" else CLUSTER_ROLES,
                                 namespace if ref.get("kind") == "Role" else "", ref.get("name", ""))
                rules += (role or {}).get("rules") or []
    return any(_rule_matches(rule, verb_, group, resource, name) for rule in rules)


def denial(identity: Identity, verb_: str, group: str, resource: str, namespace: str | None, name: str | None) -> str:
    """The API server's message for a forbidden request."""
    base, _, sub = resource.partition("/")
    what = f'{base} "{name}"' if name else base
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    subresource = f' subresource "{sub}"' if sub else ""
    return (f'{what} is forbidden: User "{identity.user}" cannot {verb_} resource "{base}"{subresource} '
            f'in API group "{group}" {scope}')
