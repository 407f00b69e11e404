"""The hub's TLS certificate as files: make or load it, and check it before it goes anywhere.

Deployment types 2 and 3 terminate TLS at a Network Load Balancer with a certificate from
AWS Certificate Manager (:mod:`.aws.acm` imports it; :mod:`.certificate` decides which).
The walkthrough uses a self-signed certificate (a wildcard SAN covers every subdomain); a
real one can be given as PEM files.

Private keys are written with mode 0600 under the deployment's state folder and are never
printed, logged or glued: only the certificate's public facts (domain, SANs, expiry,
fingerprint) leave this module.

- ``generate_self_signed`` / ``load_pem``: get a :class:`CertificateMaterial`;
- ``checks`` / ``validate``: key matches certificate, validity window, domain coverage,
  key type ACM and NLB accept (rows, or one ``ParameterError``);
- ``certificate_dir``: where a deployment's generated certificate and key live.
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

from .errors import ParameterError
from .params import covers
from .paths import deployment_dir, write_file

DEFAULT_VALIDITY_DAYS = 365
# File names of a generated certificate and its key in the certificate folder.
CERTIFICATE_FILE = "tls.crt"
KEY_FILE = "tls.key"
# ACM imports RSA 1024-4096 and EC P-256/P-384; an NLB TLS listener accepts RSA 2048+ and EC P-256/P-384.
_RSA_SIZES = (2048, 3072, 4096)
_EC_CURVES = ("secp256r1", "secp384r1")
_EXPIRY_WARNING_DAYS = 30


def fingerprint(certificate_pem: bytes) -> str:
    """SHA-256 fingerprint of a PEM certificate (colon-separated hex), safe to show."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    digest = certificate.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


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
        """The parsed certificate."""
        return x509.load_pem_x509_certificate(self.certificate_pem)

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the certificate (colon-separated hex), safe to show."""
        return fingerprint(self.certificate_pem)

    @property
    def names(self) -> list[str]:
        """The DNS names the certificate is valid for (lower case)."""
        return certificate_names(self.certificate)

    @property
    def not_after(self) -> dt.datetime:
        """End of the validity period (UTC)."""
        return self.certificate.not_valid_after_utc

    @property
    def not_before(self) -> dt.datetime:
        """Start of the validity period (UTC)."""
        return self.certificate.not_valid_before_utc

    @property
    def self_signed(self) -> bool:
        """True if the certificate is its own issuer."""
        cert = self.certificate
        return cert.issuer == cert.subject


# --------------------------------------------------------------------------- files


def certificate_dir(deployment: str, create: bool = True) -> Path:
    """Folder of the deployment's generated certificate and key (created 0700 unless ``create`` is False)."""
    path = deployment_dir(deployment) / "certificate"
    if create:
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
    key_path, cert_path = directory / KEY_FILE, directory / CERTIFICATE_FILE
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
