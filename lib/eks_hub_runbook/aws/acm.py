"""The hub's certificate in AWS Certificate Manager: import it, find it, check, describe and delete it.

Deployment types 2 and 3 terminate TLS at a Network Load Balancer with a certificate from
ACM. The certificate itself (files, checks) is :mod:`..tls`; which one to use is decided
by :mod:`..certificate` (01_certificate's plan). Only public facts of a certificate leave
this module; the private key goes to ACM's import call and nowhere else.

Certificates the runbook imports are tagged ``runbook:deployment = <deployment>`` and
``runbook:managed-by = runbook``: the keys Terraform's default tags use, so the leftovers
scan finds them by the deployment tag like everything else. Certificates imported under
the old tags (``eks-hub-runbook/deployment``, ``managed-by = eks-hub-runbook``) are still
found, so existing deployments are still cleaned up; re-running 01_certificate adds the
new tags to them.

- ``certificates`` / ``imported_match`` / ``find_imported``: the certificates in ACM, and
  those the runbook imported for a deployment (by tag);
- ``import_certificate`` / ``ensure_certificate``: ACM import (idempotent: the same
  certificate is not imported twice) or reuse of a given ARN;
- ``check_arn`` / ``describe`` / ``delete``: a certificate's fitness, as ACM lists it, its removal.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..errors import CertificateError, ParameterError
from ..params import DeploymentParameters, covers
from ..tls import CertificateMaterial, fingerprint
from .consistency import read_after_create
from .session import client
from .tags import DEPLOYMENT_TAG, MANAGED_BY_TAG, tag_dict

MANAGED_BY = "runbook"
# The tags certificates were imported with before they took Terraform's keys.
LEGACY_TAG_DEPLOYMENT = "eks-hub-runbook/deployment"
LEGACY_TAG_MANAGED_BY = "managed-by"
LEGACY_MANAGED_BY = "eks-hub-runbook"
# ListCertificates returns only RSA_1024 and RSA_2048 certificates unless asked for other key types.
_KEY_TYPES = ["RSA_1024", "RSA_2048", "RSA_3072", "RSA_4096", "EC_prime256v1", "EC_secp384r1", "EC_secp521r1"]


def _tags(params: DeploymentParameters) -> list[dict[str, str]]:
    return [
        {"Key": DEPLOYMENT_TAG, "Value": params.deployment},
        {"Key": MANAGED_BY_TAG, "Value": MANAGED_BY},
        {"Key": "Name", "Value": f"{params.deployment}-hub"},
    ]


def _acm(params: DeploymentParameters):
    return client("acm", params.target, params.region)


# --------------------------------------------------------------------------- find


def certificates(target: str, region: str) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """Every certificate in ACM on ``target`` in ``region``, of any key type: (ARN, summary, tags)."""
    acm = client("acm", target, region)
    found = []
    for page in acm.get_paginator("list_certificates").paginate(Includes={"keyTypes": _KEY_TYPES}):
        for summary in page.get("CertificateSummaryList", []):
            arn = summary["CertificateArn"]
            try:
                tags = tag_dict(acm.list_tags_for_certificate(CertificateArn=arn).get("Tags"))
            except acm.exceptions.ResourceNotFoundException:
                continue  # deleted since the listing
            found.append((arn, summary, tags))
    return found


def imported_match(tags: dict[str, str], deployment: str) -> str:
    """Why a certificate with ``tags`` was imported by the runbook for ``deployment`` ('' if it was not).

    The runbook's tags, or the ones it used before (certificates of existing deployments).
    """
    if tags.get(DEPLOYMENT_TAG) == deployment and tags.get(MANAGED_BY_TAG) == MANAGED_BY:
        return f"tag {DEPLOYMENT_TAG}"
    if tags.get(LEGACY_TAG_DEPLOYMENT) == deployment and tags.get(LEGACY_TAG_MANAGED_BY) == LEGACY_MANAGED_BY:
        return f"tag {LEGACY_TAG_DEPLOYMENT} (before {DEPLOYMENT_TAG})"
    return ""


def _imported(params: DeploymentParameters) -> list[tuple[str, dict[str, str]]]:
    """(ARN, tags) of the certificates the runbook imported for the deployment, by ARN."""
    return sorted(((arn, tags) for arn, _, tags in certificates(params.target, params.region)
                   if imported_match(tags, params.deployment)), key=lambda item: item[0])


def find_imported(params: DeploymentParameters) -> list[str]:
    """ARNs of certificates this runbook imported for the deployment (by tag, today's or the old ones)."""
    return [arn for arn, _ in _imported(params)]


def _fingerprint_of(params: DeploymentParameters, arn: str) -> str | None:
    """SHA-256 fingerprint of the certificate stored under ``arn`` (None if it is gone)."""
    acm = _acm(params)
    try:
        pem = acm.get_certificate(CertificateArn=arn)["Certificate"]
    except (acm.exceptions.ResourceNotFoundException, acm.exceptions.RequestInProgressException):
        return None
    return fingerprint(pem.encode())


# --------------------------------------------------------------------------- import


def import_certificate(params: DeploymentParameters, material: CertificateMaterial) -> str:
    """Import into ACM, tagged for the deployment. Idempotent.

    If a certificate imported earlier for this deployment is the same certificate,
    its ARN is returned unchanged (given today's tags if it has only the old ones); if it
    has another one, the new certificate is re-imported into the same ARN (so nothing
    that references it breaks).
    """
    acm = _acm(params)
    existing = _imported(params)
    for arn, tags in existing:
        if _fingerprint_of(params, arn) == material.fingerprint:
            if tags.get(DEPLOYMENT_TAG) != params.deployment:
                acm.add_tags_to_certificate(CertificateArn=arn, Tags=_tags(params))
            return arn
    request: dict[str, Any] = {"Certificate": material.certificate_pem, "PrivateKey": material.key_pem}
    if material.chain_pem:
        request["CertificateChain"] = material.chain_pem
    if existing:
        request["CertificateArn"] = existing[0][0]
    else:
        request["Tags"] = _tags(params)
    try:
        arn = acm.import_certificate(**request)["CertificateArn"]
    except acm.exceptions.ValidationException as exc:
        raise CertificateError(f"ACM refused the certificate: {exc.response['Error'].get('Message', exc)}") from None
    # ACM is eventually consistent: read the certificate back before anything uses its ARN.
    read_after_create(lambda: acm.describe_certificate(CertificateArn=arn), "ACM DescribeCertificate",
                      ["ResourceNotFoundException"])
    if existing:
        # ACM keeps tags on re-import; make sure of it (moto drops them), it is idempotent.
        acm.add_tags_to_certificate(CertificateArn=arn, Tags=_tags(params))
    return arn


def check_arn(params: DeploymentParameters, arn: str, now: dt.datetime | None = None) -> None:
    """Check that an ACM certificate exists, is usable and covers the hub domain."""
    acm = _acm(params)
    try:
        cert = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    except (acm.exceptions.ResourceNotFoundException, acm.exceptions.InvalidArnException):
        raise ParameterError("certificate_arn", f"{arn} is not a certificate in ACM ({params.target}, {params.region})",
                             "check the ARN and region, or leave it empty to create one with 01_certificate") from None
    if cert.get("Status") not in ("ISSUED",):
        raise ParameterError("certificate_arn", f"the certificate's status is {cert.get('Status')}",
                             "use an ISSUED certificate (imported, or validated by DNS)")
    names = cert.get("SubjectAlternativeNames") or [cert.get("DomainName", "")]
    if not any(covers(name, params.domain) for name in names):
        raise ParameterError("certificate_arn", f"the certificate ({', '.join(names)}) does not cover {params.domain!r}",
                             "use a certificate for that name or its parent's wildcard")
    not_after = cert.get("NotAfter")
    if not_after is not None and not_after <= (now or dt.datetime.now(dt.timezone.utc)):
        raise ParameterError("certificate_arn", f"the certificate expired on {not_after:%Y-%m-%d}", "renew or replace it")


def recorded_arn(params: DeploymentParameters) -> str:
    """The certificate the deployment uses: ``certificate_arn`` when given, else the one
    01_certificate (or 02_deploy) recorded for the deployment; '' when there is neither."""
    from .. import records

    return params.certificate_arn or records.recall(params.deployment, "certificate_arn", "") or ""


def ensure_certificate(params: DeploymentParameters, recalled_arn: str = "") -> str:
    """The certificate ARN a deployment uses, creating one on the sandbox if none exists.

    Order: ``params.certificate_arn``; the ARN ``01_certificate`` recorded
    (``recalled_arn``); on the sandbox only, a self-signed certificate made and imported
    now (so 02_deploy works on a fresh clone). On ``aws`` a missing certificate is a
    ``ParameterError``: importing into a real account is left to 01_certificate.

    Where the target makes certificates (the sandbox), a recorded certificate that is gone or
    does not cover the domain is replaced: the sandbox's local AWS starts empty whenever the
    sandbox starts, so a certificate recorded before ``05_cleanup`` no longer exists.
    """
    from .. import certificate, targets  # certificate (01_certificate's plan) imports this module

    makes = targets.of(params).makes_certificates
    if not params.uses_domain:
        return ""
    if params.certificate_arn:
        check_arn(params, params.certificate_arn)
        return params.certificate_arn
    if recalled_arn:
        try:
            check_arn(params, recalled_arn)
            return recalled_arn
        except ParameterError:
            if not makes:
                raise
    if not makes:
        raise ParameterError("certificate_arn", f"auth '{params.auth}' needs an ACM certificate for {params.domain} and none was recorded",
                             "run 01_certificate for this deployment first, or pass -p certificate_arn arn:aws:acm:...")
    return certificate.apply(certificate.plan(params))


# --------------------------------------------------------------------------- describe, delete


def describe(params: DeploymentParameters, arn: str) -> list[dict[str, str]]:
    """The certificate as ACM lists it: one row per field (no key material)."""
    if not arn:
        return []
    cert = _acm(params).describe_certificate(CertificateArn=arn)["Certificate"]
    sans = cert.get("SubjectAlternativeNames") or []

    def day(value: Any) -> str:
        return f"{value:%Y-%m-%d}" if isinstance(value, dt.datetime) else str(value or "")

    return [
        {"field": "status", "value": str(cert.get("Status", ""))},
        {"field": "type", "value": str(cert.get("Type", ""))},
        {"field": "domain", "value": str(cert.get("DomainName", ""))},
        {"field": "subject alternative names", "value": ", ".join(sans)},
        {"field": "key algorithm", "value": str(cert.get("KeyAlgorithm", ""))},
        {"field": "valid from", "value": day(cert.get("NotBefore"))},
        {"field": "expires", "value": day(cert.get("NotAfter"))},
        {"field": "in use by", "value": ", ".join(cert.get("InUseBy", [])) or "(nothing yet)"},
    ]


def delete(params: DeploymentParameters, arn: str = "") -> list[str]:
    """Delete the given certificate, or every one imported for the deployment. Idempotent.

    Returns the ARNs deleted. A certificate still attached to a load balancer cannot be
    deleted; ACM's error is turned into a ``CertificateError`` saying so.
    """
    acm = _acm(params)
    arns = [arn] if arn else find_imported(params)
    deleted = []
    for item in arns:
        try:
            acm.delete_certificate(CertificateArn=item)
            deleted.append(item)
        except acm.exceptions.ResourceNotFoundException:
            continue
        except acm.exceptions.ResourceInUseException:
            raise CertificateError(f"{item} is still in use by a load balancer; delete the load balancer first (05_cleanup does)") from None
    return deleted
