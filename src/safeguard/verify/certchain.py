"""Fulcio signing certificates checked without sigstore-python: chain, profile, time.

Used where sigstore-python's ``Verifier`` does not apply: cosign's legacy ``.sig``/``.att`` layers
(certificate and chain in the ``dev.sigstore.cosign/certificate`` and ``/chain`` annotations,
time from the ``dev.sigstore.cosign/bundle`` SET) and bundles sigstore-python refuses to load
(v0.1 with a SET only, ``intoto`` entries). The rules are the Sigstore client specification's
("Certificate" and "Establishing a time for the signature"):

* the leaf must chain to a certificate authority of the trusted root that was valid at the
  signing time (cryptography's RFC 5280 path validation, ``PolicyBuilder`` with the time set to
  the log's integrated time; web-PKI extension defaults, except that the end-entity may carry
  the code-signing EKU instead of client-auth, as sigstore-python configures it);
* the leaf itself must be valid at that time (Fulcio certificates live ten minutes);
* key usage ``digitalSignature`` and EKU ``codeSigning`` (Fulcio's profile);
* a bundle's ``x509CertificateChain`` must not contain a root (a self-signed certificate):
  trust comes from the trusted root only. A legacy chain annotation may end with the root, as
  Fulcio returns it; that root must then be one of the trusted roots, and is not used as an anchor.

The embedded SCTs are checked next, against the issuer this path found (``safeguard.verify.sct``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from safeguard.verify.errors import CheckFailed
from safeguard.verify.trustroot import TrustMaterial


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """PEM (one or more blocks) or a single DER certificate, with readable extensions
    (cryptography parses them lazily: a malformed one, such as an SCT list that is not one, is
    ``CERT_INVALID`` here rather than an exception wherever they are first read)."""
    try:
        if b"-----BEGIN" in data:
            certs = list(x509.load_pem_x509_certificates(data))
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise CheckFailed("CERT_INVALID", f"cannot read certificate: {exc}") from None
    for cert in certs:
        try:
            cert.extensions  # noqa: B018 - parse them now
        except ValueError as exc:
            raise CheckFailed(
                "CERT_INVALID", f"cannot read the certificate's extensions: {exc}"
            ) from None
    return certs


def is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # wrong key type, bad signature: not self-signed
        return False
    return True


def _profile(leaf: x509.Certificate) -> None:
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise CheckFailed(
            "CERT_PROFILE_INVALID", f"signing certificate lacks an extension: {exc}"
        ) from None
    if not usage.digital_signature:
        raise CheckFailed(
            "CERT_PROFILE_INVALID", "signing certificate is not for digital signature"
        )
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise CheckFailed("CERT_PROFILE_INVALID", "signing certificate is not for code signing")


def verify_certificate(
    leaf: x509.Certificate,
    chain: Sequence[x509.Certificate],
    trust: TrustMaterial,
    at: dt.datetime,
    *,
    from_bundle: bool,
) -> list[x509.Certificate]:
    """Check ``leaf`` (with ``chain``, leaf-most first) at time ``at``; returns the path found.

    Raises ``CheckFailed`` with ``CERT_CHAIN_CONTAINS_ROOT``, ``CERT_UNTRUSTED_ROOT``,
    ``CERT_OUTSIDE_VALIDITY``, ``CA_OUTSIDE_VALIDITY``, ``CERT_CHAIN_INVALID`` or
    ``CERT_PROFILE_INVALID``.
    """
    roots = {ca.root.fingerprint(hashes.SHA256()) for ca in trust.certificate_authorities}
    intermediates: list[x509.Certificate] = []
    for cert in chain:
        if is_self_signed(cert):
            if from_bundle:
                raise CheckFailed(
                    "CERT_CHAIN_CONTAINS_ROOT",
                    "the bundle's certificate chain contains the root "
                    f"{cert.subject.rfc4514_string()}; roots must come from the trusted root only",
                )
            if cert.fingerprint(hashes.SHA256()) not in roots:
                raise CheckFailed(
                    "CERT_UNTRUSTED_ROOT",
                    f"the certificate chain ends in {cert.subject.rfc4514_string()}, which is not "
                    "a root of the trusted root",
                )
            continue
        intermediates.append(cert)
    if not leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc:
        raise CheckFailed(
            "CERT_OUTSIDE_VALIDITY",
            f"the signing certificate was not valid at the signing time {at.isoformat()} "
            f"(valid {leaf.not_valid_before_utc.isoformat()} to "
            f"{leaf.not_valid_after_utc.isoformat()})",
        )
    authorities = [ca for ca in trust.certificate_authorities if ca.valid.contains(at)]
    if not authorities:
        raise CheckFailed(
            "CA_OUTSIDE_VALIDITY",
            f"no certificate authority of the trusted root was valid at {at.isoformat()}",
        )
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    errors: list[str] = []
    for ca in authorities:
        verifier = (
            PolicyBuilder()
            .store(Store([ca.root]))
            .time(at)
            .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
            .build_client_verifier()
        )
        try:
            path = verifier.verify(leaf, [*intermediates, *ca.intermediates]).chain
        except (VerificationError, ValueError, x509.UnsupportedGeneralNameType) as exc:
            errors.append(f"{ca.uri or ca.root.subject.rfc4514_string()}: {exc}")
            continue
        _profile(leaf)
        return list(path)
    raise CheckFailed(
        "CERT_CHAIN_INVALID",
        "the signing certificate does not chain to a trusted certificate authority: "
        + "; ".join(errors),
    )
