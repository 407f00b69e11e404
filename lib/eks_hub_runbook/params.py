"""Typed runbook parameters and the rules per deployment type.

papermill injects values as Python literals and coerces what looks like a number
(``-p account 007`` arrives as ``7``), so every value is converted and checked
here. ``resolve`` reports every bad parameter at once (one :class:`ParameterError`
each, naming the parameter and the fix), before anything is created.

Deployment types (from the blueprint):

====  ==========  ======================================================
type  auth        how the hub is reached
====  ==========  ======================================================
1     dummy       ``kubectl port-forward svc/proxy-public`` (sandbox: a URL)
2     cognito     NLB with TLS from an ACM certificate, at ``domain``
3     oauth       as type 2, login through a Keycloak-style OIDC provider
====  ==========  ======================================================
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterable, TypeVar

from . import targets
from .errors import ParameterError, raise_all

T = TypeVar("T")

AUTH_METHODS = ("dummy", "cognito", "oauth")
DEPLOYMENT_TYPES = {"dummy": 1, "cognito": 2, "oauth": 3}
NAT_MODES = ("single", "per-az")
KUBERNETES_VERSIONS = ("1.31", "1.32", "1.33")
# Commercial regions with EKS, g5 and the Cognito hosted UI.
REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1",
    "ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-southeast-1", "ap-southeast-2",
    "sa-east-1",
)
SECRET_PARAMETERS = ("oauth_client_secret", "demo_password")
# Environment variable each secret is read from (never a papermill parameter).
SECRET_ENV = {"oauth_client_secret": "RUNBOOK_OAUTH_CLIENT_SECRET", "demo_password": "RUNBOOK_DEMO_PASSWORD"}

# The original blueprint's variables (blueprint.tfvars) -> the runbook parameter for each.
# Names the two share (region, oauth_domain) need no entry.
BLUEPRINT_NAMES = {
    "name": "deployment",
    "jupyter_hub_auth_mechanism": "auth",
    "jupyterhub_domain": "domain",
    "acm_certificate_domain": "certificate_domain",
    "oauth_jupyter_client_id": "oauth_client_id",
    "oauth_username_key": "oauth_username_claim",
    "eks_cluster_version": "kubernetes_version",
}
# Blueprint variables that are secrets -> the runbook secret they are.
SECRET_BLUEPRINT_NAMES = {"oauth_jupyter_client_secret": "oauth_client_secret"}

_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
_HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_USER = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,62}$")
_CLIENT_ID = re.compile(r"^[\w.:-]{1,128}$")
_CLAIM = re.compile(r"^[A-Za-z_][\w:.-]{0,63}$")
_ACM_ARN = re.compile(r"^arn:aws[\w-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")


@dataclass(frozen=True)
class DeploymentParameters:
    """Everything a deployment is made from, validated.

    Field names match the notebooks' ``parameters`` cells.
    """

    target: str = targets.DEFAULT
    deployment: str = "jupyterhub-on-eks"
    region: str = "us-west-2"
    auth: str = "dummy"
    domain: str = ""
    certificate_domain: str = ""
    certificate_arn: str = ""
    oauth_domain: str = ""
    oauth_realm: str = "jupyterhub"
    oauth_client_id: str = ""
    oauth_username_claim: str = "preferred_username"
    allowed_users: tuple[str, ...] = ("user-1", "user-2")
    allow_all: bool = False
    admin_users: tuple[str, ...] = ()
    kubernetes_version: str = "1.33"
    public_access_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    nat_gateway_mode: str = "single"
    enable_monitoring: bool = False
    enable_kubecost: bool = False
    gpu_spot: bool = False
    cull_timeout_minutes: float = 60.0
    profiles: tuple[str, ...] = field(default_factory=tuple)
    # names the target filled in (Target.parameter_defaults; not a parameter: not recorded, not compared)
    defaulted: tuple[str, ...] = field(default=(), compare=False)

    @property
    def deployment_type(self) -> int:
        return DEPLOYMENT_TYPES[self.auth]

    @property
    def cluster_name(self) -> str:
        return self.deployment

    @property
    def uses_domain(self) -> bool:
        return self.deployment_type in (2, 3)

    @property
    def hub_callback_url(self) -> str:
        return f"https://{self.domain}/hub/oauth_callback" if self.domain else ""

    @property
    def email_domain(self) -> str:
        """Domain of the demo users' email addresses (cognito signs users in by email)."""
        return self.domain.split(".", 1)[1] if self.domain else ""

    def login_name(self, user: str) -> str:
        """The JupyterHub name a demo user (``user-1``) gets with this login method.

        The Cognito user pool uses the email address as the user name, so for
        ``cognito`` a bare name becomes ``name@<parent of the hub domain>``.
        """
        if self.auth == "cognito" and "@" not in user:
            return f"{user}@{self.email_domain}"
        return user

    def as_dict(self) -> dict[str, Any]:
        """Plain values (lists, not tuples), suitable for JSON and papermill."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k != "defaulted"}


def parameter_names() -> list[str]:
    """The deployment parameters (the fields of :class:`DeploymentParameters`)."""
    return [f.name for f in fields(DeploymentParameters) if f.name != "defaulted"]


def _text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        raise ParameterError(name, f"expected text, got {value!r}", f"pass a string, e.g. -p {name} '...'")
    return str(value).strip()


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    text = _text(name, value).lower()
    if text not in choices:
        raise ParameterError(name, f"{value!r} is not one of {', '.join(choices)}", f"use one of: {', '.join(choices)}")
    return text


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(name, value).lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off", ""):
        return False
    raise ParameterError(name, f"{value!r} is not a boolean", "use True or False")


def _list(name: str, value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, (list, tuple)):
        items = [_text(name, v) for v in value]
    else:
        items = _text(name, value).split(",")
    return tuple(item.strip() for item in items if item.strip())


CULL_TIMEOUT_RANGE = (0.1, 7 * 24 * 60.0)  # minutes: 6 s (a demo on the sandbox) to a week


def _cull_timeout(value: Any) -> float:
    """Minutes a server may stay idle before the idle culler stops it; 0 turns culling off."""
    name = "cull_timeout_minutes"
    fix = f"use 0 (never cull) or a number of minutes from {CULL_TIMEOUT_RANGE[0]:g} to {CULL_TIMEOUT_RANGE[1]:g}, e.g. 60"
    if isinstance(value, bool):
        raise ParameterError(name, f"expected a number of minutes, got {value!r}", fix)
    try:
        minutes = float(_text(name, value) if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ParameterError(name, f"{value!r} is not a number of minutes", fix) from None
    if minutes != 0 and not CULL_TIMEOUT_RANGE[0] <= minutes <= CULL_TIMEOUT_RANGE[1]:
        raise ParameterError(name, f"{minutes:g} minutes is out of range", fix)
    return minutes


def profile_slugs() -> tuple[str, ...]:
    """The slugs of the hub's profiles, read from its values (``singleuser.profileList``)."""
    from .platform import facts

    return tuple(profile["slug"] for profile in facts.profile_list())


def _profiles(value: Any) -> tuple[str, ...]:
    """Profile slugs the hub offers (empty: all of them); each must be one of the hub's profiles."""
    profiles = _list("profiles", value)
    known = profile_slugs()
    unknown = [slug for slug in profiles if slug not in known]
    if unknown:
        raise ParameterError("profiles", f"{', '.join(map(repr, unknown))} {'is not a profile' if len(unknown) == 1 else 'are not profiles'} of the hub",
                             f"use slugs from: {', '.join(known)} (or leave it empty for all of them)")
    return profiles


def _hostname(name: str, value: str, wildcard: bool = False) -> str:
    host = value.lower().rstrip(".")
    labels = host.split(".")
    if wildcard and labels and labels[0] == "*":
        labels = labels[1:]
    if len(labels) < 2 or len(host) > 253 or not all(_HOSTNAME_LABEL.match(label) for label in labels):
        example = "*.example.com" if wildcard else "hub.example.com"
        raise ParameterError(name, f"{value!r} is not a valid DNS name", f"give a fully qualified name such as {example}")
    if labels[-1].isdigit():
        raise ParameterError(name, f"{value!r} looks like an IP address", "give a DNS name, not an address")
    return host


def covers(certificate_domain: str, host: str) -> bool:
    """True if a certificate name (possibly ``*.`` wildcard) covers ``host``."""
    certificate_domain, host = certificate_domain.lower().rstrip("."), host.lower().rstrip(".")
    if certificate_domain.startswith("*."):
        parent = certificate_domain[2:]
        return host.endswith("." + parent) and "." not in host[: -len(parent) - 1]
    return certificate_domain == host


class Problems:
    """Collects the :class:`ParameterError` of every bad parameter, so one validation run
    reports them all (:meth:`raise_all`), not only the first."""

    def __init__(self) -> None:
        self.errors: list[ParameterError] = []

    def check(self, convert: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``convert(*args)``, or None after recording its error."""
        try:
            return convert(*args, **kwargs)
        except ParameterError as exc:
            self.errors.extend(exc.errors)
            return None

    def add(self, parameter: str, problem: str, fix: str) -> None:
        self.errors.append(ParameterError(parameter, problem, fix))

    def failed(self, *names: str) -> bool:
        """True if any of ``names`` already has an error (checks that depend on it are skipped)."""
        return any(e.parameter in names for e in self.errors)

    def raise_all(self) -> None:
        raise_all(self.errors)


def resolve(**raw: Any) -> DeploymentParameters:
    """Convert and validate raw parameter values (from papermill, a form or the CLI).

    Every bad parameter is reported at once (:class:`ParameterErrors`). Unknown names are
    rejected too, so a typo does not silently fall back to a default. A login method's
    required names that are not given get the target's ``parameter_defaults`` where it has
    them (the sandbox's reserved example names; listed in ``defaulted``); on AWS they stay
    required.
    """
    problems = Problems()
    for name in sorted(set(raw) - set(parameter_names()) - {"interactive", "confirm"}):
        problems.errors.append(unknown_parameter(name, parameter_names(), "a deployment parameter"))
    defaults = DeploymentParameters()
    get = lambda name: raw.get(name, getattr(defaults, name))  # noqa: E731
    defaulted: list[str] = []

    target = problems.check(_target, get("target"))
    fills_in = targets.get(target).parameter_defaults if target else {}
    deployment = problems.check(deployment_name, get("deployment"))
    region = problems.check(_region, get("region"))
    auth = problems.check(_choice, "auth", get("auth"), AUTH_METHODS)
    if auth == "cognito" and deployment and re.search("aws|amazon|cognito", deployment):
        problems.add("deployment", f"{deployment!r} contains a word Cognito forbids in hosted-UI domain prefixes (aws, amazon, cognito)",
                     "choose a deployment name without them, e.g. jupyterhub-demo")
    kubernetes_version = problems.check(_kubernetes_version, get("kubernetes_version"))
    nat_gateway_mode = problems.check(_choice, "nat_gateway_mode", get("nat_gateway_mode"), NAT_MODES)
    cidrs = problems.check(_cidrs, get("public_access_cidrs"))

    def target_default(name: str, value: str) -> str:
        if value or name not in fills_in:
            return value
        defaulted.append(name)
        return fills_in[name]

    domain = problems.check(_text, "domain", get("domain")) or ""
    certificate_domain = problems.check(_text, "certificate_domain", get("certificate_domain")) or ""
    certificate_arn = problems.check(_text, "certificate_arn", get("certificate_arn")) or ""
    if auth == "dummy" and domain:
        problems.add("domain", "dummy login is only allowed with deployment type 1 (port-forward, no domain)",
                     "drop -p domain, or use -p auth cognito / oauth for a public hub")
    elif auth in ("cognito", "oauth") and not problems.failed("domain"):
        domain = target_default("domain", domain)
        if not domain:
            problems.add("domain", f"auth '{auth}' (deployment type {DEPLOYMENT_TYPES[auth]}) needs the hub's domain name",
                         "pass -p domain hub.example.com")
        elif domain.startswith("*"):
            problems.add("domain", "the hub domain cannot be a wildcard", "pass a concrete name such as hub.example.com")
        else:
            domain = problems.check(_hostname, "domain", domain)
        if domain and not problems.failed("domain", "certificate_domain"):
            certificate_domain = problems.check(_hostname, "certificate_domain",
                                                certificate_domain or "*." + domain.split(".", 1)[1], wildcard=True)
            if certificate_domain and not covers(certificate_domain, domain) and not covers(certificate_domain.lstrip("*."), domain):
                problems.add("certificate_domain", f"{certificate_domain!r} does not cover the hub domain {domain!r}",
                             f"use *.{domain.split('.', 1)[1]} or {domain}")
        if certificate_arn and not _ACM_ARN.match(certificate_arn):
            problems.add("certificate_arn", f"{certificate_arn!r} is not an ACM certificate ARN",
                         "use arn:aws:acm:<region>:<account>:certificate/<id>, or leave it empty to use the one from 01_certificate")

    oauth_domain = problems.check(_text, "oauth_domain", get("oauth_domain")) or ""
    oauth_client_id = problems.check(_text, "oauth_client_id", get("oauth_client_id")) or ""
    oauth_realm = problems.check(_text, "oauth_realm", get("oauth_realm")) or ""
    oauth_username_claim = problems.check(_text, "oauth_username_claim", get("oauth_username_claim")) or ""
    if not problems.failed("oauth_username_claim") and not _CLAIM.match(oauth_username_claim):
        problems.add("oauth_username_claim", f"{oauth_username_claim!r} is not a claim name", "use e.g. preferred_username or email")
    if auth == "oauth":
        oauth_domain = target_default("oauth_domain", oauth_domain)
        oauth_client_id = target_default("oauth_client_id", oauth_client_id)
        if not oauth_domain:
            problems.add("oauth_domain", "auth 'oauth' needs the identity provider's host", "pass -p oauth_domain keycloak.example.com")
        elif not oauth_domain.startswith(("127.0.0.1", "localhost")):
            oauth_domain = problems.check(_hostname, "oauth_domain", oauth_domain)
        if not oauth_client_id:
            problems.add("oauth_client_id", "auth 'oauth' needs the OAuth client id registered for the hub",
                         "pass -p oauth_client_id jupyterhub (the client secret goes in $RUNBOOK_OAUTH_CLIENT_SECRET)")
        elif not _CLIENT_ID.match(oauth_client_id):
            problems.add("oauth_client_id", f"{oauth_client_id!r} has characters a client id cannot have", "use letters, digits, '.', '_', ':' or '-'")
        if not re.match(r"^[\w.-]{1,64}$", oauth_realm):
            problems.add("oauth_realm", f"{oauth_realm!r} is not a realm name", "use letters, digits, '.', '_' or '-'")

    allow_all = problems.check(_bool, "allow_all", get("allow_all"))
    allowed_users = problems.check(_users, "allowed_users", get("allowed_users"))
    admin_users = problems.check(_users, "admin_users", get("admin_users"))
    if auth == "cognito" and domain and not problems.failed("domain"):
        email_domain = domain.split(".", 1)[1]
        allowed_users = tuple(u if "@" in u else f"{u}@{email_domain}" for u in allowed_users or ())
        admin_users = tuple(u if "@" in u else f"{u}@{email_domain}" for u in admin_users or ())
    if (auth in ("cognito", "oauth") and allow_all is False and not problems.failed("allowed_users", "admin_users")
            and not allowed_users and not admin_users):
        problems.add("allowed_users", f"with auth '{auth}' nobody could log in (OAuthenticator 16+ allows no one by default)",
                     "pass -p allowed_users user-1,user-2 or -p allow_all True")
    enable_monitoring = problems.check(_bool, "enable_monitoring", get("enable_monitoring"))
    enable_kubecost = problems.check(_bool, "enable_kubecost", get("enable_kubecost"))
    gpu_spot = problems.check(_bool, "gpu_spot", get("gpu_spot"))
    cull_timeout_minutes = problems.check(_cull_timeout, get("cull_timeout_minutes"))
    profiles = problems.check(_profiles, get("profiles"))
    problems.raise_all()

    return DeploymentParameters(
        target=target,
        deployment=deployment,
        region=region,
        auth=auth,
        domain=domain,
        certificate_domain=certificate_domain,
        certificate_arn=certificate_arn,
        oauth_domain=oauth_domain,
        oauth_realm=oauth_realm,
        oauth_client_id=oauth_client_id,
        oauth_username_claim=oauth_username_claim,
        allowed_users=allowed_users,
        allow_all=allow_all,
        admin_users=admin_users,
        kubernetes_version=kubernetes_version,
        public_access_cidrs=cidrs,
        nat_gateway_mode=nat_gateway_mode,
        enable_monitoring=enable_monitoring,
        enable_kubecost=enable_kubecost,
        gpu_spot=gpu_spot,
        cull_timeout_minutes=cull_timeout_minutes,
        profiles=profiles,
        defaulted=tuple(defaulted),
    )


def deployment_name(value: Any) -> str:
    """A deployment's name, checked (it names the cluster, the state folder and the records)."""
    deployment = _text("deployment", value).lower()
    if not _NAME.match(deployment):
        raise ParameterError(
            "deployment", f"{deployment!r} is not a valid name",
            "use 3-32 characters: lowercase letters, digits and '-', starting with a letter (e.g. jupyterhub-on-eks)",
        )
    return deployment


def _target(value: Any) -> str:
    name = _text("target", value).lower()
    if name not in targets.names():
        targets.get(name)  # raises: not installed (with how to install it), or not a target
    return name


def _region(value: Any) -> str:
    region = _text("region", value).lower()
    if region not in REGIONS:
        raise ParameterError("region", f"{region!r} is not a supported AWS region", f"use one of: {', '.join(REGIONS)}")
    return region


def _kubernetes_version(value: Any) -> str:
    version = _text("kubernetes_version", value)
    if version not in KUBERNETES_VERSIONS:
        raise ParameterError(
            "kubernetes_version", f"{version!r} is not supported",
            f"use one of: {', '.join(KUBERNETES_VERSIONS)} (quote it: -p kubernetes_version '1.33')",
        )
    return version


def _cidrs(value: Any) -> tuple[str, ...]:
    cidrs = _list("public_access_cidrs", value)
    if not cidrs:
        raise ParameterError("public_access_cidrs", "is empty", "give at least one CIDR, e.g. 203.0.113.0/24")
    for cidr in cidrs:
        try:
            ipaddress.IPv4Network(cidr, strict=True)
        except ValueError:
            raise ParameterError("public_access_cidrs", f"{cidr!r} is not an IPv4 CIDR block", "use a network such as 203.0.113.0/24") from None
    return cidrs


def _users(name: str, value: Any) -> tuple[str, ...]:
    users = _list(name, value)
    for user in users:
        if not _USER.match(user):
            raise ParameterError(name, f"{user!r} is not a valid JupyterHub user name", "use lowercase letters, digits, '.', '_', '@' or '-'")
    return users


def unknown_parameter(name: str, known: Iterable[str], what: str = "a parameter of this notebook") -> ParameterError:
    """The error for a name that is not ``what`` (e.g. "a parameter of 03_verify"): which runbook
    parameter a blueprint variable is, else the nearest of ``known``, else the list of them."""
    known = sorted(set(known))
    if name in BLUEPRINT_NAMES:
        runbook_name = BLUEPRINT_NAMES[name]
        return ParameterError(name, f"is the blueprint's variable for the runbook parameter `{runbook_name}`",
                              f"pass -p {runbook_name} ... (or give the whole blueprint.tfvars: runbook run --tfvars FILE)")
    if name in SECRET_BLUEPRINT_NAMES:
        return ParameterError(name, "is the blueprint's OAuth client secret, and secrets are never parameters",
                              f"export {SECRET_ENV[SECRET_BLUEPRINT_NAMES[name]]}=... or put it in a --secrets-file (mode 0600)")
    nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if nearest:
        return ParameterError(name, f"is not {what}", f"did you mean `{nearest[0]}`?")
    if name in module_variables():
        return ParameterError(name, f"is not {what}: it is a variable of the Terraform module that the runbook does not expose",
                              "drop it: the runbook keeps the module's default (terraform/variables.tf)")
    return ParameterError(name, f"is not {what}", f"use one of: {', '.join(known)}")


@functools.cache
def module_variables() -> frozenset[str]:
    """The root module's variable names (terraform/variables.tf)."""
    from .paths import TERRAFORM_DIR

    path = TERRAFORM_DIR / "variables.tf"
    return frozenset(re.findall(r'^variable "([\w-]+)"', path.read_text(), re.MULTILINE)) if path.is_file() else frozenset()


def oauth_client_secret(params: DeploymentParameters) -> str:
    """The OAuth client secret of an ``oauth`` deployment: ``$RUNBOOK_OAUTH_CLIENT_SECRET``, or one the
    target makes when it is not set (the sandbox's own identity provider), registered for redaction."""
    target = targets.of(params)
    value = secret("oauth_client_secret", required="oauth_client_secret" not in target.makes_secrets)
    if not value:
        from .records.redact import register_secret

        value = target.generated_secret(params, "oauth_client_secret") or ""
        register_secret(value)
    return value


def secret(name: str, required: bool = True) -> str:
    """Read a secret parameter from its environment variable (never from papermill)."""
    import os

    env_name = SECRET_ENV[name]
    value = os.environ.get(env_name, "")
    if required and not value:
        raise ParameterError(name, f"is not set; secrets are read from the environment, not from notebook parameters",
                             f"export {env_name}=... before running (or put it in the secrets file)")
    return value
