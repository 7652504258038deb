"""Checking one signature: cryptography, signed digest, signer, log, in that order.

A ``Candidate`` is one signature as found (a Sigstore bundle from a referrer or a file, or a
cosign ``.sig``/``.att`` layer with its payload); ``check`` answers a ``SignatureCheck`` that says
whether it satisfies the ``TrustPolicy`` for the ``Artifact``, and if not, the first named reason
(``docs/verification.md`` lists them). The order is the Sigstore client specification's
("Verification"): the signature over the exact bytes, then what those bytes claim (the artifact
digest, the in-toto subject and predicate type), then who signed (key or certificate identity),
then the transparency log evidence that binds this very signature.

A DSSE envelope may carry several signatures. Any of them that verifies with a trusted key (or
the signing certificate's key) signs it, and a log entry must record one of those verified
signatures, by its key: not necessarily the first signature of the envelope, and never one that
did not verify.

What runs where:

* key-signed bundles (``publicKey``), key-signed cosign layers and their log entries: here
  (``safeguard.keys`` for signatures, ``safeguard.verify.logentry`` for entries);
* keyless bundles that sigstore-python loads (v0.2/v0.3 with inclusion proofs, ``hashedrekord``
  and ``dsse`` entries, Rekor v2, RFC 3161 timestamps) and whose certificate has a P-256 key:
  sigstore-python's ``Verifier`` through ``safeguard.verify.keyless``, with Safeguard's identity
  matcher (sigstore-python verifies ECDSA with SHA-256 only);
* other keyless material (v0.1 bundles with only a SET, ``intoto`` 0.0.2 entries, legacy
  ``.sig`` layers with certificate annotations, bundles by P-384, RSA or Ed25519 certificates):
  here, chain by ``safeguard.verify.certchain`` at the log's integrated time, the certificate's
  embedded SCTs by ``safeguard.verify.sct`` (RFC 6962), SET and proofs by
  ``safeguard.verify.logentry``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from safeguard.core.digest import DEFAULT_ALGORITHM, Digest
from safeguard.core.errors import SafeguardError
from safeguard.formats.bundle import DIGEST_NAMES, Bundle, HashOutput, TransparencyLogEntry
from safeguard.formats.cosign_sig import DSSE_MEDIA_TYPE, SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer
from safeguard.formats.dsse import Envelope
from safeguard.formats.intoto import PAYLOAD_TYPE, Statement
from safeguard.formats.simplesigning import parse_payload
from safeguard.keys.base import (
    PublicKey,
    algorithm_for,
    is_valid_signature,
    key_id_for,
    verify_digest_signature,
)
from safeguard.verify.attestations import check_statement
from safeguard.verify.certchain import load_certificates, verify_certificate
from safeguard.verify.errors import CheckFailed
from safeguard.verify.identity import identity_of
from safeguard.verify.logentry import (
    LogEvidence,
    check_binding,
    entry_from_rekor_bundle,
    verify_entry,
)
from safeguard.verify.policy import TrustPolicy
from safeguard.verify.predicates import PredicateRequirement
from safeguard.verify.sct import verify_embedded_scts
from safeguard.verify.verdict import SignatureCheck

COSIGN_SIGN_PREDICATE: Final = "https://sigstore.dev/cosign/sign/v1"
CONTENT_ANNOTATION: Final = "dev.sigstore.bundle.content"
PREDICATE_ANNOTATION: Final = "dev.sigstore.bundle.predicateType"
_SIGSTORE_KINDS: Final = frozenset({"hashedrekord", "dsse"})


@dataclass(frozen=True, slots=True)
class Artifact:
    """What was signed: its digest, and its bytes when they are at hand (blobs)."""

    digest: Digest
    data: bytes | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class Expectation:
    """Signatures (``attestation=False``) or attestations, optionally of one predicate type,
    and optionally with a predicate that must meet ``requirement`` (builder, build type,
    source: ``safeguard.verify.predicates``)."""

    attestation: bool = False
    predicate_type: str | None = None
    any_statement: bool = False  # blobs: a DSSE statement of any type signs its subjects
    requirement: PredicateRequirement | None = None


@dataclass(slots=True)
class Candidate:
    source: str
    location: str
    bundle_json: bytes | None = None
    layer: SignatureLayer | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    error: SafeguardError | None = None

    @property
    def kind(self) -> str:
        if self.bundle_json is not None:
            return "bundle"
        if self.layer is not None:
            return "dsse-layer" if self.layer.media_type == DSSE_MEDIA_TYPE else "simplesigning"
        return "unreadable"


# --- small steps ------------------------------------------------------------------------------


def _verify_message(keys: Sequence[PublicKey], signature: bytes, message: bytes) -> PublicKey:
    if not keys:
        raise CheckFailed(
            "NO_KEY_GIVEN", "the signature was made with a key, but no public key was given"
        )
    for key in keys:
        if is_valid_signature(key, signature, message):
            return key
    raise CheckFailed(
        "SIGNATURE_INVALID",
        "the signature does not verify with "
        + ("the given key" if len(keys) == 1 else "any of the given keys"),
    )


def _verify_digest(keys: Sequence[PublicKey], signature: bytes, digest: Digest) -> PublicKey:
    if not keys:
        raise CheckFailed(
            "NO_KEY_GIVEN", "the signature was made with a key, but no public key was given"
        )
    for key in keys:
        try:
            verify_digest_signature(key, signature, bytes.fromhex(digest.hex))
        except SafeguardError:
            continue
        return key
    raise CheckFailed("SIGNATURE_INVALID", "the signature does not verify with the given key(s)")


Signer = tuple[PublicKey, bytes]
"""A key and a signature it verifies."""


class _Verified:
    """The (key, signature) pairs that verify, found lazily and remembered: the first one is
    the signer, unless a log entry records another of them."""

    def __init__(self, pairs: Iterator[Signer]) -> None:
        self._pending = pairs
        self._found: list[Signer] = []

    def __iter__(self) -> Iterator[Signer]:
        index = 0
        while True:
            if index < len(self._found):
                yield self._found[index]
                index += 1
                continue
            nxt = next(self._pending, None)
            if nxt is None:
                return
            self._found.append(nxt)

    def first(self) -> Signer | None:
        return next(iter(self), None)


def _envelope_signers(keys: Sequence[PublicKey], envelope: Envelope) -> _Verified:
    """Every (key, signature) of the envelope that verifies; refused when none does."""
    if not keys:
        raise CheckFailed(
            "NO_KEY_GIVEN", "the envelope was signed with a key, but no public key was given"
        )
    if not envelope.signatures:
        raise CheckFailed("SIGNATURE_INVALID", "the DSSE envelope has no signatures")
    message = envelope.pae()
    signers = _Verified(
        (key, sig.sig)
        for key in keys
        for sig in envelope.signatures
        if is_valid_signature(key, sig.sig, message)
    )
    if signers.first() is None:
        raise CheckFailed(
            "SIGNATURE_INVALID", "no signature of the DSSE envelope verifies with the given key(s)"
        )
    return signers


def _bind(entry: TransparencyLogEntry, signers: Iterable[Signer], **binding: Any) -> Signer:
    """The verified (key, signature) that ``entry`` records; the first mismatch if none."""
    refused: CheckFailed | None = None
    for key, signature in signers:
        try:
            check_binding(entry, signature=signature, public_key=key, **binding)
        except CheckFailed as exc:
            refused = refused or exc
            if exc.reason_code != "TLOG_BODY_MISMATCH":
                raise  # the entry itself is unreadable: no other signature helps
            continue
        return key, signature
    assert refused is not None
    raise refused


def _statement(
    payload_type: str,
    payload: bytes,
    artifact: Artifact,
    expect: Expectation,
    claimed_type: str | None,
) -> Statement:
    if payload_type != PAYLOAD_TYPE:
        raise CheckFailed(
            "PAYLOAD_TYPE_UNEXPECTED",
            f"the envelope's payload type is {payload_type!r}, not {PAYLOAD_TYPE!r}",
        )
    try:
        statement = Statement.from_json(payload)
    except SafeguardError as exc:
        raise CheckFailed("STATEMENT_INVALID", f"signed payload: {exc.message}") from None
    if claimed_type is not None and claimed_type != statement.predicate_type:
        raise CheckFailed(
            "ANNOTATION_MISMATCH",
            f"the manifest annotation claims predicate type {claimed_type!r}, but the signed "
            f"statement has {statement.predicate_type!r}",
        )
    if (
        not expect.attestation
        and not expect.any_statement
        and statement.predicate_type != COSIGN_SIGN_PREDICATE
    ):
        raise CheckFailed(
            "NOT_A_SIGNATURE",
            f"the statement is an attestation of type {statement.predicate_type!r}, "
            "not an image signature",
        )
    if (
        expect.attestation
        and statement.predicate_type == COSIGN_SIGN_PREDICATE
        and expect.predicate_type != COSIGN_SIGN_PREDICATE
    ):
        raise CheckFailed("NOT_AN_ATTESTATION", "the statement is a cosign image signature")
    check_statement(statement, artifact.digest, expect.predicate_type, expect.requirement)
    return statement


def _logs(
    entries: Sequence[TransparencyLogEntry],
    policy: TrustPolicy,
    *,
    signers: Iterable[Signer],
    artifact_digest: Digest | None = None,
    payload: bytes | None = None,
) -> tuple[list[dict[str, Any]], PublicKey | None]:
    """Check each log entry, and the key of the verified signature the first one records; a
    failing entry refuses the signature (fail closed)."""
    if policy.trust is None or policy.ignore_tlog:
        note = "not checked: no trusted root" if policy.trust is None else "ignored on request"
        return [
            {"logIndex": e.log_index, "logId": e.log_id.hex(), "verified": False, "note": note}
            for e in entries
        ], None
    out = []
    logged: PublicKey | None = None
    for entry in entries:
        evidence = verify_entry(entry, policy.trust)
        key, _ = _bind(entry, signers, artifact_digest=artifact_digest, payload=payload)
        logged = logged or key
        out.append({**evidence.as_dict(), "verified": True})
    if policy.require_tlog and not out:
        raise CheckFailed(
            "TLOG_MISSING",
            "the signature has no transparency log entry, and the trusted root requires one",
            hint="sign with a log, or pass --insecure-ignore-tlog to accept unlogged signatures",
        )
    return out, logged


def _keyless_own(
    leaf_der_or_pem: bytes,
    chain: Sequence[x509.Certificate],
    entries: Sequence[TransparencyLogEntry],
    policy: TrustPolicy,
    *,
    from_bundle: bool,
    verify_signature: Callable[[Any], Iterable[bytes]],
    binding: Callable[[Any], dict[str, Any]],
    check: SignatureCheck,
) -> None:
    """Keyless material sigstore-python does not take: see module docstring.

    ``verify_signature(key)`` gives the signatures the leaf's key verifies (refusing when there
    is none); each log entry must record one of them, by that key, over the content
    ``binding(key)`` names (``check_binding``'s ``artifact_digest`` or ``payload``).
    """
    if policy.identity is None or policy.trust is None:
        raise CheckFailed(
            "NO_IDENTITY_GIVEN",
            "the signature was made keyless (certificate), but no certificate identity was given",
        )
    leaf = load_certificates(leaf_der_or_pem)[0]
    identity = identity_of(leaf)
    check.signer = {"certificate": identity.as_dict()}
    mismatches = policy.identity.mismatches(identity)
    if mismatches:
        raise CheckFailed("IDENTITY_MISMATCH", "; ".join(mismatches))
    public_key: Any = leaf.public_key()
    signed = _Verified((public_key, sig) for sig in verify_signature(public_key))
    times: list[dt.datetime] = []
    for entry in entries:
        evidence: LogEvidence = verify_entry(entry, policy.trust)
        _bind(entry, signed, **binding(public_key))
        check.log.append({**evidence.as_dict(), "verified": True})
        if evidence.integrated_time is not None and evidence.set_verified:
            times.append(evidence.integrated_time)
    if not times:
        raise CheckFailed(
            "NO_SIGNING_TIME",
            "no verified transparency log entry with a signed integration time: the signing "
            "certificate cannot be checked at signing time",
        )
    paths = [
        verify_certificate(leaf, chain, policy.trust, when, from_bundle=from_bundle)
        for when in times
    ]
    issuer = paths[0][1] if len(paths[0]) > 1 else paths[0][0]
    sct = verify_embedded_scts(leaf, issuer, policy.trust)
    check.detail["sct"] = (
        {**sct.as_dict(), "verified": True}
        if sct is not None
        else {"verified": False, "note": "not checked: the trusted root lists no CT logs"}
    )


# --- bundles ----------------------------------------------------------------------------------


def _check_bundle(
    cand: Candidate,
    artifact: Artifact,
    policy: TrustPolicy,
    expect: Expectation,
    check: SignatureCheck,
) -> None:
    assert cand.bundle_json is not None
    if b'"publicKey"' not in cand.bundle_json:
        # Keyless bundles sigstore-python loads go straight to it: one parse, not two.
        from safeguard.verify.keyless import parse_bundle

        try:
            fast = parse_bundle(cand.bundle_json)
        except SafeguardError:
            fast = None
        if (
            fast is not None
            and fast.log_entry._inner.kind_version.kind in _SIGSTORE_KINDS
            and _sigstore_python_verifies(fast.signing_certificate)
        ):
            check.detail["bundleMediaType"] = str(fast._inner.media_type)
            _keyless_sigstore(
                fast,
                cand,
                artifact,
                policy,
                expect,
                check,
                cand.annotations.get(PREDICATE_ANNOTATION),
            )
            return
    try:
        bundle = Bundle.from_json(cand.bundle_json)
    except SafeguardError as exc:
        raise CheckFailed("BUNDLE_INVALID", exc.message) from None
    check.kind = "bundle/dsse" if bundle.dsse_envelope else "bundle/message-signature"
    check.detail["bundleVersion"] = bundle.version
    claimed_content = cand.annotations.get(CONTENT_ANNOTATION)
    actual_content = "dsse-envelope" if bundle.dsse_envelope else "message-signature"
    if claimed_content is not None and claimed_content != actual_content:
        raise CheckFailed(
            "ANNOTATION_MISMATCH",
            f"the manifest annotation claims {claimed_content!r} content, the bundle holds "
            f"{actual_content!r}",
        )
    claimed_type = cand.annotations.get(PREDICATE_ANNOTATION)
    vm = bundle.verification_material
    entries = vm.tlog_entries
    if vm.public_key_hint is not None:
        if bundle.dsse_envelope is not None:
            envelope = bundle.dsse_envelope
            signers = _envelope_signers(policy.keys, envelope)
            first = signers.first()
            assert first is not None
            check.signer = {"keyId": key_id_for(first[0]), "hint": vm.public_key_hint}
            statement = _statement(
                envelope.payload_type, envelope.payload, artifact, expect, claimed_type
            )
            check.payload = statement.to_dict()
            check.log, logged = _logs(entries, policy, signers=signers, payload=envelope.payload)
            if logged is not None:
                check.signer["keyId"] = key_id_for(logged)
        else:
            ms = bundle.message_signature
            assert ms is not None
            if expect.attestation:
                raise CheckFailed(
                    "NOT_AN_ATTESTATION", "a message-signature bundle attests nothing"
                )
            artifact = _as_signed(artifact, ms.message_digest, entries)
            _message_digest_matches(ms.message_digest, artifact)
            if artifact.data is not None:
                key = _verify_message(policy.keys, ms.signature, artifact.data)
            else:
                key = _verify_digest(policy.keys, ms.signature, artifact.digest)
            check.signer = {"keyId": key_id_for(key), "hint": vm.public_key_hint}
            check.log, _ = _logs(
                entries,
                policy,
                signers=[(key, ms.signature)],
                artifact_digest=artifact.digest,
            )
        return
    # Keyless.
    if policy.identity is None or policy.trust is None:
        raise CheckFailed(
            "NO_IDENTITY_GIVEN",
            "the signature was made keyless (certificate), but no certificate identity was given",
        )
    leaf = vm.leaf_certificate
    assert leaf is not None
    delegate = bool(entries) and all(e.kind in _SIGSTORE_KINDS for e in entries)
    sigstore_bundle = None
    if delegate:
        from safeguard.verify.keyless import parse_bundle

        try:
            sigstore_bundle = parse_bundle(cand.bundle_json)
        except SafeguardError:
            sigstore_bundle = None
    if sigstore_bundle is not None and _sigstore_python_verifies(
        sigstore_bundle.signing_certificate
    ):
        _keyless_sigstore(sigstore_bundle, cand, artifact, policy, expect, check, claimed_type)
        return
    chain = [x509.load_der_x509_certificate(c) for c in (vm.certificate_chain or ())[1:]]
    if bundle.dsse_envelope is not None:
        envelope = bundle.dsse_envelope

        def verify_sig(public_key: Any) -> Iterable[bytes]:
            return (sig for _, sig in _envelope_signers([public_key], envelope))

        _keyless_own(
            leaf,
            chain,
            entries,
            policy,
            from_bundle=True,
            verify_signature=verify_sig,
            binding=lambda _key: {"payload": envelope.payload},
            check=check,
        )
        statement = _statement(
            envelope.payload_type, envelope.payload, artifact, expect, claimed_type
        )
        check.payload = statement.to_dict()
    else:
        ms = bundle.message_signature
        assert ms is not None
        if expect.attestation:
            raise CheckFailed("NOT_AN_ATTESTATION", "a message-signature bundle attests nothing")
        artifact = _as_signed(artifact, ms.message_digest, entries)
        _message_digest_matches(ms.message_digest, artifact)
        signed = artifact

        def verify_ms(public_key: Any) -> Iterable[bytes]:
            if signed.data is not None:
                _verify_message([public_key], ms.signature, signed.data)
            else:
                _verify_digest([public_key], ms.signature, signed.digest)
            return [ms.signature]

        _keyless_own(
            leaf,
            chain,
            entries,
            policy,
            from_bundle=True,
            verify_signature=verify_ms,
            binding=lambda _key: {"artifact_digest": signed.digest},
            check=check,
        )


def _as_signed(
    artifact: Artifact, message_digest: Any, entries: Sequence[TransparencyLogEntry] = ()
) -> Artifact:
    """The blob digested with the hash its bundle signs: the ``messageDigest``'s, else the one
    its logged ``hashedrekord`` names. A P-384 key signs SHA-384, so a blob digested with the
    default SHA-256 is digested again (only possible with its bytes: a digest given alone is
    compared as given, and a digest of the wrong hash is ``DIGEST_MISMATCH``)."""
    if artifact.data is None:
        return artifact
    algorithm = None
    if message_digest is not None:
        algorithm = DIGEST_NAMES.get(message_digest.algorithm)
    else:
        for logged in entries:
            try:
                named = logged.entry().artifact_digest
            except SafeguardError:
                continue
            if named is not None:
                algorithm = named.algorithm
                break
    if algorithm is None or algorithm == artifact.digest.algorithm:
        return artifact
    return Artifact(Digest.of(artifact.data, algorithm), artifact.data, artifact.name)


def _signed_digest(public_key: Any, payload: bytes) -> Digest:
    """The digest a signature over ``payload`` by ``public_key`` signs, which is what its
    ``hashedrekord`` entry records: the key's hash (SHA-384 for P-384, as
    ``safeguard.signing`` logs it), SHA-256 for keys that hash nothing themselves (Ed25519)."""
    return Digest.of(payload, algorithm_for(public_key).hash_name or DEFAULT_ALGORITHM)


def _message_digest_matches(message_digest: Any, artifact: Artifact) -> None:
    if message_digest is None:
        return
    names = {"SHA2_256": "sha256", "SHA2_384": "sha384", "SHA2_512": "sha512"}
    algorithm = names.get(message_digest.algorithm)
    if algorithm != artifact.digest.algorithm or message_digest.digest.hex() != artifact.digest.hex:
        raise CheckFailed(
            "DIGEST_MISMATCH",
            f"the bundle signs {algorithm}:{message_digest.digest.hex()}, not {artifact.digest}",
        )


def _sigstore_python_verifies(cert: x509.Certificate) -> bool:
    """Whether sigstore-python can check signatures by ``cert``'s key: it verifies keyless
    signatures as ECDSA over SHA-256 only (message signatures and DSSE alike), so a P-256 key.
    Other keys (P-384 signing SHA-384, RSA, Ed25519) go to Safeguard's own path, which hashes
    with the key's algorithm (``safeguard.keys``)."""
    key = cert.public_key()
    return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)


def _sigstore_facts(sigstore_bundle: Any) -> tuple[bool, Any]:
    """Whether a sigstore-python bundle holds an envelope, and its message digest if any."""
    if sigstore_bundle._dsse_envelope is not None:
        return True, None
    message = sigstore_bundle._inner.message_signature
    digest = getattr(message, "message_digest", None) if message is not None else None
    if digest is None:
        return False, None
    algorithm = getattr(digest.algorithm, "name", str(digest.algorithm))
    return False, HashOutput(algorithm, bytes(digest.digest))


def _keyless_sigstore(
    sigstore_bundle: Any,
    cand: Candidate,
    artifact: Artifact,
    policy: TrustPolicy,
    expect: Expectation,
    check: SignatureCheck,
    claimed_type: str | None,
) -> None:
    from safeguard.verify.keyless import verify_artifact_bundle, verify_dsse_bundle

    if policy.identity is None or policy.trust is None:
        raise CheckFailed(
            "NO_IDENTITY_GIVEN",
            "the signature was made keyless (certificate), but no certificate identity was given",
        )
    is_dsse, message_digest = _sigstore_facts(sigstore_bundle)
    check.kind = "bundle/dsse" if is_dsse else "bundle/message-signature"
    claimed_content = cand.annotations.get(CONTENT_ANNOTATION)
    actual_content = "dsse-envelope" if is_dsse else "message-signature"
    if claimed_content is not None and claimed_content != actual_content:
        raise CheckFailed(
            "ANNOTATION_MISMATCH",
            f"the manifest annotation claims {claimed_content!r} content, the bundle holds "
            f"{actual_content!r}",
        )
    identity = identity_of(sigstore_bundle.signing_certificate)
    check.signer = {"certificate": identity.as_dict()}
    mismatches = policy.identity.mismatches(identity)
    if mismatches:
        raise CheckFailed("IDENTITY_MISMATCH", "; ".join(mismatches))
    root = policy.trust.sigstore_root()
    try:
        if is_dsse:
            payload_type, payload, evidence = verify_dsse_bundle(
                sigstore_bundle, root, policy.identity, matched=identity
            )
        else:
            if expect.attestation:
                raise CheckFailed(
                    "NOT_AN_ATTESTATION", "a message-signature bundle attests nothing"
                )
            artifact = _as_signed(artifact, message_digest)
            _message_digest_matches(message_digest, artifact)
            evidence = verify_artifact_bundle(
                sigstore_bundle,
                artifact.data if artifact.data is not None else artifact.digest,
                root,
                policy.identity,
                matched=identity,
            )
            payload_type, payload = "", b""
    except CheckFailed:
        raise
    except SafeguardError as exc:
        raise CheckFailed("KEYLESS_INVALID", exc.message) from None
    check.log = [{**evidence.as_dict(), "verified": True, "verifiedBy": "sigstore-python"}]
    if is_dsse:
        statement = _statement(payload_type, payload, artifact, expect, claimed_type)
        check.payload = statement.to_dict()


# --- legacy cosign layers ---------------------------------------------------------------------


def _check_layer(
    cand: Candidate,
    artifact: Artifact,
    policy: TrustPolicy,
    expect: Expectation,
    check: SignatureCheck,
) -> None:
    layer = cand.layer
    assert layer is not None and layer.payload is not None
    payload = layer.payload
    want = DSSE_MEDIA_TYPE if expect.attestation else SIMPLE_SIGNING_MEDIA_TYPE
    if layer.media_type != want:
        raise CheckFailed(
            "MEDIA_TYPE_UNEXPECTED",
            f"layer media type is {layer.media_type!r}, expected {want!r}",
        )
    entries = [entry_from_rekor_bundle(layer.bundle)] if layer.bundle is not None else []
    envelope: Envelope | None = None
    if expect.attestation:
        try:
            envelope = Envelope.from_json(payload)
        except SafeguardError as exc:
            raise CheckFailed("DSSE_INVALID", exc.message) from None
    if layer.certificate is not None:
        chain = load_certificates(layer.chain) if layer.chain else []
        if envelope is not None:
            env = envelope

            def verify_sig(public_key: Any) -> Iterable[bytes]:
                return (sig for _, sig in _envelope_signers([public_key], env))

            def binding(key: Any) -> dict[str, Any]:
                return {"payload": env.payload}

        else:

            def verify_sig(public_key: Any) -> Iterable[bytes]:
                _verify_message([public_key], layer.signature, payload)
                return [layer.signature]

            def binding(key: Any) -> dict[str, Any]:
                return {"artifact_digest": _signed_digest(key, payload)}

        _keyless_own(
            layer.certificate,
            chain,
            entries,
            policy,
            from_bundle=False,
            verify_signature=verify_sig,
            binding=binding,
            check=check,
        )
    elif envelope is not None:
        signers = _envelope_signers(policy.keys, envelope)
        first = signers.first()
        assert first is not None
        check.log, logged = _logs(entries, policy, signers=signers, payload=envelope.payload)
        check.signer = {"keyId": key_id_for(logged or first[0])}
    else:
        key = _verify_message(policy.keys, layer.signature, payload)
        check.signer = {"keyId": key_id_for(key)}
        check.log, _ = _logs(
            entries,
            policy,
            signers=[(key, layer.signature)],
            artifact_digest=_signed_digest(key, payload),
        )
    if envelope is not None:
        statement = _statement(
            envelope.payload_type, envelope.payload, artifact, expect, layer.predicate_type
        )
        check.payload = statement.to_dict()
        return
    try:
        parsed = parse_payload(payload)
    except SafeguardError as exc:
        raise CheckFailed("PAYLOAD_INVALID", exc.message) from None
    if parsed.manifest_digest != artifact.digest:
        raise CheckFailed(
            "DIGEST_MISMATCH",
            f"the signed payload names {parsed.manifest_digest}, not {artifact.digest}",
        )
    check.payload = json.loads(payload)
    check.detail["dockerReference"] = parsed.docker_reference


# --- entry point ------------------------------------------------------------------------------


def check(
    cand: Candidate, artifact: Artifact, policy: TrustPolicy, expect: Expectation
) -> SignatureCheck:
    """Check one candidate; never raises for bad material, only records why it was refused."""
    result = SignatureCheck(cand.source, cand.location, cand.kind)
    if cand.error is not None:
        return result.refuse(
            getattr(cand.error, "code", "SIGNATURE_MATERIAL_INVALID"), cand.error.message
        )
    try:
        if cand.bundle_json is not None:
            _check_bundle(cand, artifact, policy, expect, result)
        elif cand.layer is not None:
            _check_layer(cand, artifact, policy, expect, result)
        else:
            return result.refuse("SIGNATURE_MATERIAL_INVALID", "no signature material")
    except CheckFailed as exc:
        return result.refuse(exc.reason_code, exc.message)
    except SafeguardError as exc:
        return result.refuse(exc.code, exc.message)
    except Exception as exc:  # hostile input must never escape as a traceback
        return result.refuse(
            "MATERIAL_UNREADABLE", f"signature material could not be processed: {exc!r}"
        )
    if expect.requirement is not None:
        result.detail["predicateRequirement"] = expect.requirement.as_dict()
    what = "attestation" if expect.attestation else "signature"
    who = result.signer.get("keyId") or (result.signer.get("certificate") or {}).get("subject")
    logged = any(e.get("verified") for e in result.log)
    return result.accept(
        f"{what} verified ({'key ' if 'keyId' in result.signer else 'identity '}{who}"
        f"{', logged' if logged else ', no log entry checked'})"
    )
