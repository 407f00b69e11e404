"""01_certificate's steps: decide what to do for a deployment, make the certificate, put it in ACM.

- ``plan``: decide and validate before anything is created (a :class:`CertificatePlan`);
- ``materialise``: generate the self-signed certificate if the plan needs one;
- ``apply``: carry the plan out (import into ACM, or check a given ARN) and return the ARN.

The certificate files and their checks are :mod:`.tls`; the ACM calls are :mod:`.aws.acm`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import tls
from .aws import acm
from .errors import ParameterError
from .params import DeploymentParameters
from .paths import deployment_dir


@dataclass
class CertificatePlan:
    """What 01_certificate will do for a deployment, decided before anything is created.

    ``action`` is ``skip`` (type 1: no certificate), ``reuse-arn`` (a given ACM ARN),
    ``import`` (PEM files given) or ``generate`` (self-signed; ``material`` is filled
    in by ``materialise``, or is an earlier generated certificate that still fits).
    """

    params: DeploymentParameters
    action: str
    material: tls.CertificateMaterial | None = None
    certificate_arn: str = ""
    wildcard: bool = True
    validity_days: int = tls.DEFAULT_VALIDITY_DAYS

    @property
    def needed(self) -> bool:
        """False for deployment type 1, which has no certificate."""
        return self.action != "skip"

    def as_rows(self) -> list[dict[str, str]]:
        """The plan as rows (item, value) for a table. Paths are shown, key material never."""
        p = self.params
        rows = [
            {"item": "deployment type", "value": f"{p.deployment_type} ({p.auth})"},
            {"item": "action", "value": _ACTIONS[self.action]},
        ]
        if self.needed:
            rows += [
                {"item": "hub domain", "value": p.domain},
                {"item": "certificate domain", "value": p.certificate_domain},
            ]
        if self.action == "generate":
            rows.append({"item": "names (SANs)", "value": ", ".join(_generated_names(p, self.wildcard))})
            rows.append({"item": "validity", "value": f"{self.validity_days} days"})
        if self.material is not None and self.material.certificate_path:
            rows.append({"item": "certificate file", "value": _display_path(self.material.certificate_path, p.deployment)})
            rows.append({"item": "private key file (0600, never shown)", "value": _display_path(self.material.key_path, p.deployment)})
        if self.certificate_arn:
            rows.append({"item": "certificate ARN", "value": self.certificate_arn})
        return rows

    def checks(self, now: dt.datetime | None = None) -> list[dict[str, str]]:
        """The checks for this plan: of the PEM material, of the given ARN, or why none are needed.

        Generates the self-signed certificate first if the plan needs one.
        """
        if not self.needed:
            return [{"check": "certificate needed", "status": "skip",
                     "detail": f"deployment type 1 ({self.params.auth}) is reached by port-forward: no certificate"}]
        if self.action == "reuse-arn":
            acm.check_arn(self.params, self.certificate_arn, now)
            return [{"check": "ACM certificate usable", "status": "pass",
                     "detail": f"ISSUED, covers {self.params.domain}, not expired"}]
        materialise(self)
        assert self.material is not None
        return tls.checks(self.material, self.params.domain, now)


_ACTIONS = {
    "skip": "nothing to do (no domain, no TLS at a load balancer)",
    "reuse-arn": "reuse the given ACM certificate",
    "import": "import the given PEM files into ACM",
    "generate": "generate a self-signed certificate and import it into ACM",
}


def _wildcard_name(params: DeploymentParameters, wildcard: bool) -> str:
    """The wildcard a generated certificate gets as its second name ('' for none)."""
    return params.certificate_domain if wildcard and params.certificate_domain.startswith("*.") else ""


def _generated_names(params: DeploymentParameters, wildcard: bool) -> list[str]:
    """The names (SANs) of a certificate generated for the deployment."""
    wildcard_name = _wildcard_name(params, wildcard)
    return [params.domain, wildcard_name] if wildcard_name else [params.domain]


def _display_path(path: Path | None, deployment: str) -> str:
    """A path relative to the deployment folder when it lives there (stable across machines)."""
    if path is None:
        return ""
    try:
        return "<deployment>/" + str(Path(path).resolve().relative_to(deployment_dir(deployment).resolve()))
    except ValueError:
        return str(path)


def plan(params: DeploymentParameters, options: Any = None, now: dt.datetime | None = None) -> CertificatePlan:
    """Decide and validate what to do; raises ``ParameterError`` before anything is created.

    ``options`` is any object with the 01_certificate options as attributes
    (``certificate_file``, ``private_key_file``, ``chain_file``, ``wildcard``,
    ``validity_days``; missing ones take their defaults), e.g. ``nb.options_from(form)``.

    - type 1 (dummy): nothing to do;
    - ``certificate_arn`` set: reuse it (checked against ACM by ``CertificatePlan.checks``);
    - PEM files given: load and check them;
    - otherwise: generate a self-signed certificate (reusing an earlier one that is still
      valid for the same names, so re-running the notebook converges).
    """
    opt = lambda name, default: getattr(options, name, default) if options is not None else default  # noqa: E731
    certificate_file, private_key_file = opt("certificate_file", ""), opt("private_key_file", "")
    chain_file, wildcard = opt("chain_file", ""), bool(opt("wildcard", True))
    validity_days = opt("validity_days", tls.DEFAULT_VALIDITY_DAYS)
    if not params.uses_domain:
        return CertificatePlan(params, "skip")
    if bool(certificate_file) != bool(private_key_file):
        missing = "private_key_file" if certificate_file else "certificate_file"
        raise ParameterError(missing, "certificate_file and private_key_file go together",
                             "give both PEM files, or neither to generate a self-signed certificate")
    if params.certificate_arn:
        if certificate_file:
            raise ParameterError("certificate_arn", "both an ARN and PEM files were given",
                                 "give either -p certificate_arn or the PEM files, not both")
        return CertificatePlan(params, "reuse-arn", certificate_arn=params.certificate_arn)
    if certificate_file:
        material = tls.load_pem(certificate_file, private_key_file, chain_file)
        tls.validate(material, params.domain, now)
        return CertificatePlan(params, "import", material)
    if not isinstance(validity_days, int) or isinstance(validity_days, bool) or not 1 <= validity_days <= 825:
        raise ParameterError("validity_days", f"{validity_days!r} is not between 1 and 825", "use e.g. 365")
    existing = _existing_generated(params, wildcard, now)
    return CertificatePlan(params, "generate", existing, wildcard=wildcard, validity_days=validity_days)


def _existing_generated(params: DeploymentParameters, wildcard: bool, now: dt.datetime | None) -> tls.CertificateMaterial | None:
    """An earlier generated certificate for this deployment that still fits, if any."""
    directory = tls.certificate_dir(params.deployment, create=False)
    cert_path, key_path = directory / tls.CERTIFICATE_FILE, directory / tls.KEY_FILE
    if not (cert_path.is_file() and key_path.is_file()):
        return None
    try:
        material = tls.load_pem(cert_path, key_path)
    except ParameterError:
        return None
    wanted = set(_generated_names(params, wildcard))
    if set(material.names) != wanted or any(r["status"] == "fail" for r in tls.checks(material, params.domain, now)):
        return None
    material.generated = True
    return material


def materialise(plan_: CertificatePlan) -> CertificatePlan:
    """Generate the self-signed certificate if the plan needs one (no-op otherwise)."""
    if plan_.action == "generate" and plan_.material is None:
        p = plan_.params
        plan_.material = tls.generate_self_signed(
            p.domain, tls.certificate_dir(p.deployment), wildcard_domain=_wildcard_name(p, plan_.wildcard),
            validity_days=plan_.validity_days,
        )
    return plan_


def apply(plan_: CertificatePlan) -> str:
    """Carry out a plan: generate if needed, import or verify. Returns the ARN ('' for type 1)."""
    if not plan_.needed:
        return ""
    if plan_.action == "reuse-arn":
        acm.check_arn(plan_.params, plan_.certificate_arn)
        return plan_.certificate_arn
    materialise(plan_)
    assert plan_.material is not None
    plan_.certificate_arn = acm.import_certificate(plan_.params, plan_.material)
    return plan_.certificate_arn
