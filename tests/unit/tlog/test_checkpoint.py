"""C2SP checkpoints: strict parsing, exact formatting, and real Rekor checkpoints verified."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from safeguard.tlog import merkle
from safeguard.tlog.checkpoint import (
    Checkpoint,
    CheckpointOriginMismatch,
    MalformedCheckpoint,
    open_checkpoint,
    parse_signed_checkpoint,
    sign_checkpoint,
)
from safeguard.tlog.note import (
    CosignatureV1Signer,
    EcdsaSigner,
    EcdsaVerifier,
    Ed25519Signer,
    Ed25519Verifier,
    InvalidNoteSignature,
    MalformedNote,
    NoteVerifier,
    UnverifiedNote,
    parse_vkey,
    rekor_log_id,
)

from ._vectors import b64, load

ROOT = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
SOFA = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_spec_example_round_trips() -> None:
    cp = Checkpoint.from_text(SOFA)
    assert cp == Checkpoint("example.com/behind-the-sofa", 20852163, ROOT)
    assert cp.to_text() == SOFA
    signed = load("signed-notes.json")["c2sp"]["checkpointExample"]["signed"].encode()
    parsed, note = parse_signed_checkpoint(signed)
    assert parsed == cp
    assert [s.name for s in note.signatures] == [
        "example.com/behind-the-sofa",
        "witness.example.com/w1",
    ]


def test_extensions_and_edge_sizes() -> None:
    text = "log\n0\n" + base64.b64encode(merkle.EMPTY_ROOT).decode() + "\nTimestamp: 1\nx y\n"
    cp = Checkpoint.from_text(text)
    assert (cp.size, cp.extensions) == (0, ("Timestamp: 1", "x y"))
    assert cp.to_text() == text
    big = Checkpoint("rekor.sigstore.dev - 2605736670972794746", 2**64 - 1, ROOT)
    assert Checkpoint.from_text(big.to_text()) == big


R = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
BAD_TEXTS = [
    "",
    "log\n1\n" + R,  # no final newline
    "log\n1\n",  # two lines
    "\n1\n" + R + "\n",  # empty origin
    "log\n01\n" + R + "\n",  # leading zero
    "log\n00\n" + R + "\n",
    "log\n+1\n" + R + "\n",
    "log\n-34\n" + R + "\n",
    "log\n 1\n" + R + "\n",
    "log\n1 \n" + R + "\n",
    "log\n1_000\n" + R + "\n",
    "log\n\uff11\n" + R + "\n",  # a full-width digit
    "log\n18446744073709551616\n" + R + "\n",  # 2^64
    "log\n3438945738945739845734895735\n" + R + "\n",
    "log\nbananas\n" + R + "\n",
    "log\n1\nThisIsn'tBase64\n",
    "log\n1\nYmFuYW5hcw==\n",  # 7 bytes, not a SHA-256 root
    "log\n1\n" + R[:-2] + "J=\n",  # non-canonical padding bits
    "log\n1\n" + R.rstrip("=") + "\n",  # missing padding
    "log\n1\n" + R + "\n\n",  # empty extension line
    "log\n1\n" + R + "\next\n\n",
    "log\r\n1\n" + R + "\n",
    "lo\x00g\n1\n" + R + "\n",
]


@pytest.mark.parametrize("text", BAD_TEXTS, ids=range(len(BAD_TEXTS)))
def test_malformed_checkpoints(text: str) -> None:
    with pytest.raises(MalformedCheckpoint) as info:
        Checkpoint.from_text(text)
    assert info.value.code == "TLOG_CHECKPOINT_MALFORMED"
    assert info.value.http_status == 400


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": ""},
        {"origin": "a\nb"},
        {"size": -1},
        {"size": 2**64},
        {"size": True},
        {"root_hash": b"\x00" * 31},
        {"root_hash": "00" * 32},
        {"extensions": ("",)},
        {"extensions": ("a\nb",)},
        {"extensions": ["x"]},
    ],
)
def test_checkpoint_fields_are_validated(kwargs: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"origin": "log", "size": 1, "root_hash": ROOT, **kwargs}
    with pytest.raises(MalformedCheckpoint):
        Checkpoint(**fields)


def test_from_text_refuses_bytes() -> None:
    with pytest.raises(MalformedCheckpoint):
        Checkpoint.from_text(SOFA.encode())  # type: ignore[arg-type]


def test_sign_and_open() -> None:
    log = Ed25519Signer.generate("example.com/behind-the-sofa")
    witness = CosignatureV1Signer("witness.example/w", bytes(32), clock=lambda: 1_700_000_000)
    cp = Checkpoint("example.com/behind-the-sofa", 20852163, ROOT, ("ext",))
    signed = sign_checkpoint(cp, log)
    assert signed.decode().startswith(cp.to_text() + "\n— example.com/behind-the-sofa ")
    opened = open_checkpoint(signed, [log.verifier()], origin=cp.origin)
    assert opened.checkpoint == cp
    assert opened.verified_names == ("example.com/behind-the-sofa",)
    # A witness adds its cosignature, keeping the log's line.
    parsed, note = parse_signed_checkpoint(signed)
    cosigned = sign_checkpoint(parsed, witness, keep=note.signatures)
    both = open_checkpoint(cosigned, [log.verifier(), witness.verifier()])
    assert set(both.verified_names) == {"example.com/behind-the-sofa", "witness.example/w"}
    with pytest.raises(CheckpointOriginMismatch) as info:
        open_checkpoint(signed, [log.verifier()], origin="example.com/other")
    assert info.value.exit_code == 1
    with pytest.raises(UnverifiedNote):
        open_checkpoint(signed, [witness.verifier()])
    with pytest.raises(MalformedNote):
        sign_checkpoint(cp)


def test_ecdsa_signed_checkpoint() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = EcdsaSigner.from_private_key("safeguard.example/log", key)
    cp = Checkpoint("safeguard.example/log", 7, merkle.root([merkle.leaf_hash(b"x")] * 7))
    opened = open_checkpoint(sign_checkpoint(cp, signer), [parse_vkey(signer.vkey)])
    assert opened.checkpoint == cp


def test_signed_note_that_is_not_a_checkpoint() -> None:
    log = Ed25519Signer.generate("log")
    from safeguard.tlog.note import sign_note

    with pytest.raises(MalformedCheckpoint):
        open_checkpoint(sign_note("just a note\n", log), [log.verifier()])


# ---- real Rekor checkpoints ---------------------------------------------------------------------

REKOR = load("rekor-checkpoints.json")


def _log_verifier(entry: dict[str, Any]) -> NoteVerifier:
    public = serialization.load_der_public_key(b64(entry["log"]["publicKey"]))
    if isinstance(public, ec.EllipticCurvePublicKey):
        assert entry["log"]["keyDetails"] == "PKIX_ECDSA_P256_SHA_256"
        # Rekor v1: the log ID is SHA-256 of the DER public key; the key ID its first 4 bytes.
        assert rekor_log_id(public) == b64(entry["log"]["logId"])
        return EcdsaVerifier(entry["keyName"], public)
    assert isinstance(public, Ed25519PublicKey)
    assert entry["log"]["keyDetails"] == "PKIX_ED25519"
    verifier = Ed25519Verifier(entry["keyName"], public)
    # Rekor v2: the C2SP key ID is the first 4 bytes of the log ID.
    assert b64(entry["log"]["logId"])[:4] == verifier.key_id.to_bytes(4, "big")
    return verifier


@pytest.mark.parametrize("entry", REKOR["checkpoints"], ids=lambda e: e["keyName"])
def test_real_rekor_checkpoint_and_inclusion_proof(entry: dict[str, Any]) -> None:
    envelope = entry["envelope"].encode("utf-8")
    opened = open_checkpoint(envelope, [_log_verifier(entry)])
    cp = opened.checkpoint
    proof = entry["inclusionProof"]
    assert cp.size == int(proof["treeSize"])
    assert cp.root_hash == b64(proof["rootHash"])
    # The envelope re-encodes byte-exactly.
    assert parse_signed_checkpoint(envelope)[1].encode() == envelope
    leaf = merkle.leaf_hash(b64(entry["canonicalizedBody"]))
    merkle.verify_inclusion(
        leaf, int(proof["logIndex"]), cp.size, [b64(h) for h in proof["hashes"]], cp.root_hash
    )


def test_rekor_origins() -> None:
    origins = [
        Checkpoint.from_text(e["envelope"].split("\n\n")[0] + "\n").origin
        for e in REKOR["checkpoints"]
    ]
    assert origins[0].startswith("rekor.sigstore.dev - ")  # v1 origins carry the tree ID
    assert origins[2] == "log2025-alpha1.rekor.sigstage.dev"


def test_real_witness_cosignatures() -> None:
    entry = REKOR["checkpoints"][3]
    witnesses = [parse_vkey(v) for v in REKOR["witnesses"]["vkeys"]]
    envelope = entry["envelope"].encode("utf-8")
    opened = open_checkpoint(envelope, [_log_verifier(entry), *witnesses])
    assert len(opened.note.verified) == 4 and opened.note.unverified == ()
    # Witnesses alone suffice to open the note; the log key alone leaves them unverified.
    assert len(open_checkpoint(envelope, witnesses).note.verified) == 3
    assert len(open_checkpoint(envelope, [_log_verifier(entry)]).note.unverified) == 3
    # A witness line moved onto another checkpoint does not verify.
    other = Checkpoint.from_text(opened.checkpoint.to_text().replace("4026479", "4026480"))
    log = Ed25519Signer.generate("x")
    forged = sign_checkpoint(other, log, keep=opened.note.verified[1:])
    with pytest.raises(InvalidNoteSignature):
        open_checkpoint(forged, [log.verifier(), *witnesses])


def test_tampered_rekor_checkpoint_fails() -> None:
    entry = REKOR["checkpoints"][0]
    envelope = entry["envelope"]
    size = entry["inclusionProof"]["treeSize"]
    tampered = envelope.replace(f"\n{size}\n", f"\n{int(size) + 1}\n").encode()
    with pytest.raises(InvalidNoteSignature):
        open_checkpoint(tampered, [_log_verifier(entry)])


@settings(max_examples=200, deadline=None)
@given(
    origin=st.text(
        st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=40
    ),
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1),
        max_size=3,
    ),
)
def test_format_parse_round_trip(
    origin: str, size: int, root: bytes, extensions: list[str]
) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.from_text(cp.to_text()) == cp
