from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from safeguard.core.errors import InvalidInput
from safeguard.verify.identity import IdentityPolicy, Match, identity_of

WORKFLOW = "https://github.com/org/app/.github/workflows/release.yml@refs/tags/v1.2.3"
ISSUER = "https://token.actions.githubusercontent.com"


def _utf8(value: str) -> bytes:
    raw = value.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


def _fulcio_like_cert(san: x509.GeneralName, extensions: dict[str, bytes]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sigstore-intermediate")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName([san]), critical=True)
    )
    for oid, value in extensions.items():
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ObjectIdentifier(oid), value), critical=False
        )
    return builder.sign(key, hashes.SHA256())


def _github_cert() -> x509.Certificate:
    return _fulcio_like_cert(
        x509.UniformResourceIdentifier(WORKFLOW),
        {
            "1.3.6.1.4.1.57264.1.1": ISSUER.encode(),  # v1: raw bytes
            "1.3.6.1.4.1.57264.1.8": _utf8(ISSUER),  # v2: DER UTF8String
            "1.3.6.1.4.1.57264.1.12": _utf8("https://github.com/org/app"),
            "1.3.6.1.4.1.57264.1.14": _utf8("refs/tags/v1.2.3"),
            "1.3.6.1.4.1.57264.1.6": b"refs/tags/v1.2.3",
        },
    )


def test_identity_of_reads_san_issuer_and_extensions() -> None:
    ident = identity_of(_github_cert())
    assert ident.san == WORKFLOW
    assert ident.issuer == ISSUER
    assert ident.extensions["source-repository-uri"] == "https://github.com/org/app"
    assert ident.extensions["github-workflow-ref"] == "refs/tags/v1.2.3"


def test_email_and_othername_subjects() -> None:
    assert identity_of(_fulcio_like_cert(x509.RFC822Name("a@b.c"), {})).san == "a@b.c"
    other = x509.OtherName(ObjectIdentifier("1.3.6.1.4.1.57264.1.7"), _utf8("user!host"))
    assert identity_of(_fulcio_like_cert(other, {})).san == "user!host"


def test_policy_accepts_exact_and_unanchored_regexp() -> None:
    ident = identity_of(_github_cert())
    assert IdentityPolicy(Match(exact=WORKFLOW), Match(exact=ISSUER)).mismatches(ident) == []
    # cosign's -regexp flags use Go's MatchString: a match anywhere counts unless anchored.
    assert IdentityPolicy(Match(regexp="workflows/release"), Match(regexp="gitlab")).mismatches(
        ident
    ) == [f"certificate OIDC issuer {ISSUER!r} does not match /gitlab/"]
    assert (
        IdentityPolicy(
            Match(
                regexp=r"^https://github\.com/org/[^/]+/\.github/workflows/release\.yml@refs/tags/v.*$"
            ),
            extensions={"source-repository-ref": "refs/tags/v1.2.3"},
        ).mismatches(ident)
        == []
    )


def test_policy_names_every_mismatch() -> None:
    ident = identity_of(_github_cert())
    reasons = IdentityPolicy(
        Match(exact="https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main"),
        Match(exact="https://accounts.google.com"),
        {"source-repository-uri": "https://github.com/evil/app"},
    ).mismatches(ident)
    assert len(reasons) == 3
    assert "certificate identity" in reasons[0]
    assert "source-repository-uri" in reasons[2]


def test_policy_rejects_bad_input() -> None:
    with pytest.raises(InvalidInput):
        Match(regexp="(unclosed")
    with pytest.raises(InvalidInput):
        IdentityPolicy(extensions={"no-such-extension": "x"})


def test_regexp_end_anchor_behaves_as_in_go() -> None:
    """Python's ``$`` also matches before a trailing newline; Go's (cosign's) does not."""
    pattern = Match(
        regexp=r"^https://github\.com/org/app/\.github/workflows/release\.yml@refs/heads/main$"
    )
    good = "https://github.com/org/app/.github/workflows/release.yml@refs/heads/main"
    assert pattern.accepts(good)
    assert not pattern.accepts(good + "\n")
    assert not pattern.accepts(good.replace("main", "ma\x00in"))
    assert Match(regexp="main").accepts("refs/heads/main")
