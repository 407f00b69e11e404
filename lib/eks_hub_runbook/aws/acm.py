"""The hub's TLS certificate: make or load it, check it, import it into ACM, describe it.

Deployment types 2 and 3 terminate TLS at a Network Load Balancer with a
certificate from AWS Certificate Manager. The walkthrough uses a self-signed
certificate (a wildcard SAN covers every subdomain); a real one can be given as
PEM files, or an ARN of a certificate already in ACM can be reused.

Private keys are written with mode 0600 under the deployment's state folder and
are never printed, logged or glued: only the certificate's public facts (domain,
SANs, expiry, fingerprint) leave this module.

The functions fall in four groups:

- ``generate_self_signed`` / ``load_pem``: get a :class:`CertificateMaterial`;
- ``checks`` / ``validate``: key matches certificate, validity window, domain
  coverage, key type ACM and NLB accept (rows, or one ``ParameterError``);
- ``import_certificate`` / ``ensure_certificate``: ACM import (idempotent: the
  same certificate is not imported twice) or reuse of a given ARN;
- ``describe`` / ``delete``: the certificate as ACM lists it, and its removal.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import ParameterError, RunbookError
from ..params import DeploymentParameters, covers
from ..paths import deployment_dir, write_file
from .session import client

# Tags put on every certificate this runbook imports (the leftovers scan finds them by these).
TAG_DEPLOYMENT = "eks-hub-runbook/deployment"
TAG_MANAGED_BY = "managed-by"
MANAGED_BY = "eks-hub-runbook"

DEFAULT_VALIDITY_DAYS = 365
# ACM imports RSA 1024-4096 and EC P-256/P-384; an NLB TLS listener accepts RSA 2048+ and EC P-256/P-384.
_RSA_SIZES = (2048, 3072, 4096)
_EC_CURVES = ("secp256r1", "secp384r1")
_EXPIRY_WARNING_DAYS = 30


class CertificateError(RunbookError):
    """ACM refused the certificate, or a given certificate ARN cannot be used."""


@dataclass
class CertificateMaterial:
    """A certificate with its private key (PEM), and where they are on disk.

    ``key_pem`` is kept in memory only to check and import it; ``__repr__`` hides it.
    """

    certificate_pem: bytes
    key_pem: bytes = field(repr=False)
    chain_pem: bytes = b""
    certificate_path: Path | None = None
    key_path: Path | None = None
    chain_path: Path | None = None
    generated: bool = False

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem)

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the certificate (colon-separated hex), safe to show."""
        digest = self.certificate.fingerprint(hashes.SHA256()).hex().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

    @property
    def names(self) -> list[str]:
        return certificate_names(self.certificate)

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    @property
    def not_before(self) -> dt.datetime:
        return self.certificate.not_valid_before_utc

    @property
    def self_signed(self) -> bool:
        cert = self.certificate
        return cert.issuer == cert.subject


# --------------------------------------------------------------------------- files


def certificate_dir(deployment: str) -> Path:
    """Folder of the deployment's generated certificate and key (created 0700)."""
    path = deployment_dir(deployment) / "certificate"
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def certificate_names(cert: x509.Certificate) -> list[str]:
    """DNS names a certificate is valid for: its SANs, or its common name if it has none."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [attr.value for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [str(n).lower() for n in names]


def generate_self_signed(
    domain: str,
    directory: Path,
    *,
    wildcard_domain: str = "",
    validity_days: int = DEFAULT_VALIDITY_DAYS,
    key_size: int = 2048,
    now: dt.datetime | None = None,
) -> CertificateMaterial:
    """Make a self-signed certificate for ``domain`` (plus ``wildcard_domain`` as a SAN).

    Writes ``tls.key`` (0600) and ``tls.crt`` into ``directory``. The certificate is a
    server leaf (not a CA) with the TLS server-auth usage that browsers and NLBs expect.
    """
    if validity_days < 1:
        raise ParameterError("validity_days", f"{validity_days} is not a positive number of days", "use e.g. 365")
    now = now or dt.datetime.now(dt.timezone.utc)
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    names = [domain.lower()]
    if wildcard_domain and wildcard_domain.lower() not in names:
        names.append(wildcard_domain.lower())
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, domain.lower()),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "eks-hub-runbook self-signed"),
    ])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=validity_days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_encipherment=True, content_commitment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    directory.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = directory / "tls.key", directory / "tls.crt"
    write_file(key_path, key_pem, private=True)
    cert_path.write_bytes(cert_pem)
    return CertificateMaterial(cert_pem, key_pem, b"", cert_path, key_path, None, generated=True)


def _read(parameter: str, path: str | Path) -> bytes:
    file = Path(path).expanduser()
    if not file.is_file():
        raise ParameterError(parameter, f"{str(path)!r} is not a file", "give the path of a PEM file, or leave it empty to generate a self-signed certificate")
    return file.read_bytes()


def load_pem(certificate_file: str | Path, private_key_file: str | Path, chain_file: str | Path = "") -> CertificateMaterial:
    """Load an existing certificate, its private key and optional chain from PEM files.

    Raises ``ParameterError`` naming the file parameter when a file is missing or not PEM.
    Encrypted private keys are refused: ACM imports unencrypted keys only.
    """
    cert_pem = _read("certificate_file", certificate_file)
    key_pem = _read("private_key_file", private_key_file)
    chain_pem = _read("chain_file", chain_file) if chain_file else b""
    try:
        x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise ParameterError("certificate_file", f"{str(certificate_file)!r} is not a PEM certificate",
                             "give a file that starts with -----BEGIN CERTIFICATE-----") from None
    try:
        serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise ParameterError("private_key_file", "the private key is encrypted; ACM imports unencrypted keys only",
                             "decrypt it first (openssl pkey -in key.pem -out plain.pem)") from None
    except ValueError:
        raise ParameterError("private_key_file", f"{str(private_key_file)!r} is not a PEM private key",
                             "give a file that starts with -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY)") from None
    if chain_pem:
        try:
            x509.load_pem_x509_certificates(chain_pem)
        except ValueError:
            raise ParameterError("chain_file", f"{str(chain_file)!r} is not a PEM certificate chain",
                                 "give the intermediate certificates as PEM, or leave chain_file empty") from None
    return CertificateMaterial(cert_pem, key_pem, chain_pem, Path(certificate_file), Path(private_key_file),
                               Path(chain_file) if chain_file else None, generated=False)


# --------------------------------------------------------------------------- checks


def _public_bytes(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(material: CertificateMaterial) -> bool:
    """True if the private key belongs to the certificate's public key."""
    key = serialization.load_pem_private_key(material.key_pem, password=None)
    return _public_bytes(key.public_key()) == _public_bytes(material.certificate.public_key())


def _key_description(material: CertificateMaterial) -> tuple[str, bool]:
    public = material.certificate.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return f"RSA {public.key_size}", public.key_size in _RSA_SIZES
    if isinstance(public, ec.EllipticCurvePublicKey):
        return f"EC {public.curve.name}", public.curve.name in _EC_CURVES
    return type(public).__name__, False


def checks(material: CertificateMaterial, domain: str, now: dt.datetime | None = None) -> list[dict[str, str]]:
    """The certificate checks as rows: ``check``, ``status`` (pass/fail/warn/info), ``detail``.

    Details carry only public facts (names, dates, key type); never key material.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    rows = []

    def row(check: str, status: str, detail: str) -> None:
        rows.append({"check": check, "status": status, "detail": detail})

    row("private key matches certificate", "pass" if key_matches(material) else "fail",
        "same public key" if key_matches(material) else "the key belongs to another certificate")
    if material.not_before > now:
        row("validity period", "fail", f"not valid before {material.not_before:%Y-%m-%d}")
    elif material.not_after <= now:
        row("validity period", "fail", f"expired on {material.not_after:%Y-%m-%d}")
    elif material.not_after - now < dt.timedelta(days=_EXPIRY_WARNING_DAYS):
        row("validity period", "warn", f"expires on {material.not_after:%Y-%m-%d}, in less than {_EXPIRY_WARNING_DAYS} days")
    else:
        row("validity period", "pass", f"valid until {material.not_after:%Y-%m-%d}")
    names = material.names
    covered = any(covers(name, domain) for name in names)
    row(f"covers {domain}", "pass" if covered else "fail", ", ".join(names))
    description, supported = _key_description(material)
    row("key type accepted by ACM and NLB", "pass" if supported else "fail",
        description if supported else f"{description}: use RSA 2048/3072/4096 or EC P-256/P-384")
    row("issuer", "info", "self-signed: browsers will warn until you trust it" if material.self_signed
        else material.certificate.issuer.rfc4514_string())
    return rows


def validate(material: CertificateMaterial, domain: str, now: dt.datetime | None = None) -> None:
    """Raise one ``ParameterError`` for the first failed check (before anything is imported)."""
    for item in checks(material, domain, now):
        if item["status"] != "fail":
            continue
        check, detail = item["check"], item["detail"]
        if check.startswith("private key"):
            raise ParameterError("private_key_file", "the private key does not match the certificate",
                                 "give the key the certificate was issued for")
        if check == "validity period":
            raise ParameterError("certificate_file", f"the certificate is not valid now ({detail})",
                                 "renew it, or leave certificate_file empty to generate a self-signed one")
        if check.startswith("covers"):
            raise ParameterError("certificate_file", f"the certificate names ({detail}) do not cover the hub domain {domain!r}",
                                 "use a certificate for that name or a wildcard for its parent domain, or change -p domain")
        raise ParameterError("certificate_file", f"{check}: {detail}", "re-issue the certificate with a supported key")


# --------------------------------------------------------------------------- the plan for a deployment


@dataclass
class CertificatePlan:
    """What 01_certificate will do for a deployment, decided before anything is created.

    ``action`` is ``skip`` (type 1: no certificate), ``reuse-arn`` (a given ACM ARN),
    ``import`` (PEM files given) or ``generate`` (self-signed; ``material`` is filled
    in by ``materialise``, or is an earlier generated certificate that still fits).
    """

    params: DeploymentParameters
    action: str
    material: CertificateMaterial | None = None
    certificate_arn: str = ""
    wildcard: bool = True
    validity_days: int = DEFAULT_VALIDITY_DAYS

    @property
    def needed(self) -> bool:
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
            sans = [p.domain] + ([p.certificate_domain] if self.wildcard and p.certificate_domain.startswith("*.") else [])
            rows.append({"item": "names (SANs)", "value": ", ".join(sans)})
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
            check_arn(self.params, self.certificate_arn, now)
            return [{"check": "ACM certificate usable", "status": "pass",
                     "detail": f"ISSUED, covers {self.params.domain}, not expired"}]
        materialise(self)
        assert self.material is not None
        return checks(self.material, self.params.domain, now)


_ACTIONS = {
    "skip": "nothing to do (no domain, no TLS at a load balancer)",
    "reuse-arn": "reuse the given ACM certificate",
    "import": "import the given PEM files into ACM",
    "generate": "generate a self-signed certificate and import it into ACM",
}


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
    validity_days = opt("validity_days", DEFAULT_VALIDITY_DAYS)
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
        material = load_pem(certificate_file, private_key_file, chain_file)
        validate(material, params.domain, now)
        return CertificatePlan(params, "import", material)
    if not isinstance(validity_days, int) or isinstance(validity_days, bool) or not 1 <= validity_days <= 825:
        raise ParameterError("validity_days", f"{validity_days!r} is not between 1 and 825", "use e.g. 365")
    existing = _existing_generated(params, wildcard, now)
    return CertificatePlan(params, "generate", existing, wildcard=wildcard, validity_days=validity_days)


def _existing_generated(params: DeploymentParameters, wildcard: bool, now: dt.datetime | None) -> CertificateMaterial | None:
    """An earlier generated certificate for this deployment that still fits, if any."""
    directory = deployment_dir(params.deployment) / "certificate"
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    if not (cert_path.is_file() and key_path.is_file()):
        return None
    try:
        material = load_pem(cert_path, key_path)
    except ParameterError:
        return None
    wanted = {params.domain} | ({params.certificate_domain} if wildcard and params.certificate_domain.startswith("*.") else set())
    if set(material.names) != wanted or any(r["status"] == "fail" for r in checks(material, params.domain, now)):
        return None
    material.generated = True
    return material


def materialise(plan_: CertificatePlan) -> CertificatePlan:
    """Generate the self-signed certificate if the plan needs one (no-op otherwise)."""
    if plan_.action == "generate" and plan_.material is None:
        p = plan_.params
        wildcard_domain = p.certificate_domain if plan_.wildcard and p.certificate_domain.startswith("*.") else ""
        plan_.material = generate_self_signed(
            p.domain, certificate_dir(p.deployment), wildcard_domain=wildcard_domain, validity_days=plan_.validity_days
        )
    return plan_


# --------------------------------------------------------------------------- ACM


def _tags(params: DeploymentParameters) -> list[dict[str, str]]:
    return [
        {"Key": TAG_DEPLOYMENT, "Value": params.deployment},
        {"Key": TAG_MANAGED_BY, "Value": MANAGED_BY},
        {"Key": "Name", "Value": f"{params.deployment}-hub"},
    ]


def _acm(params: DeploymentParameters):
    return client("acm", params.target, params.region)


def find_imported(params: DeploymentParameters) -> list[str]:
    """ARNs of certificates this runbook imported for the deployment (by tag)."""
    acm = _acm(params)
    arns = []
    for page in acm.get_paginator("list_certificates").paginate():
        for summary in page.get("CertificateSummaryList", []):
            arn = summary["CertificateArn"]
            try:
                tags = {t["Key"]: t.get("Value", "") for t in acm.list_tags_for_certificate(CertificateArn=arn).get("Tags", [])}
            except acm.exceptions.ResourceNotFoundException:
                continue
            if tags.get(TAG_DEPLOYMENT) == params.deployment and tags.get(TAG_MANAGED_BY) == MANAGED_BY:
                arns.append(arn)
    return sorted(arns)


def _fingerprint_of(params: DeploymentParameters, arn: str) -> str | None:
    """SHA-256 fingerprint of the certificate stored under ``arn`` (None if it is gone)."""
    acm = _acm(params)
    try:
        pem = acm.get_certificate(CertificateArn=arn)["Certificate"]
    except (acm.exceptions.ResourceNotFoundException, acm.exceptions.RequestInProgressException):
        return None
    return CertificateMaterial(pem.encode(), b"").fingerprint


def import_certificate(params: DeploymentParameters, material: CertificateMaterial) -> str:
    """Import into ACM, tagged for the deployment. Idempotent.

    If a certificate imported earlier for this deployment is the same certificate,
    its ARN is returned unchanged; if it has another one, the new certificate is
    re-imported into the same ARN (so nothing that references it breaks).
    """
    acm = _acm(params)
    existing = find_imported(params)
    for arn in existing:
        if _fingerprint_of(params, arn) == material.fingerprint:
            return arn
    request: dict[str, Any] = {"Certificate": material.certificate_pem, "PrivateKey": material.key_pem}
    if material.chain_pem:
        request["CertificateChain"] = material.chain_pem
    if existing:
        request["CertificateArn"] = existing[0]
    else:
        request["Tags"] = _tags(params)
    try:
        arn = acm.import_certificate(**request)["CertificateArn"]
    except acm.exceptions.ValidationException as exc:
        raise CertificateError(f"ACM refused the certificate: {exc.response['Error'].get('Message', exc)}") from None
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


def apply(plan_: CertificatePlan) -> str:
    """Carry out a plan: generate if needed, import or verify. Returns the ARN ('' for type 1)."""
    if not plan_.needed:
        return ""
    if plan_.action == "reuse-arn":
        check_arn(plan_.params, plan_.certificate_arn)
        return plan_.certificate_arn
    materialise(plan_)
    assert plan_.material is not None
    plan_.certificate_arn = import_certificate(plan_.params, plan_.material)
    return plan_.certificate_arn


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
    from .. import targets

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
    return apply(plan(params))


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
