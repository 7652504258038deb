"""C2SP signed notes against golang.org/x/mod/sumdb/note, C2SP and transparency-dev vectors."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from hypothesis import given, settings
from hypothesis import strategies as st

from safeguard.core.errors import InvalidInput, VerificationFailed
from safeguard.tlog import note
from safeguard.tlog.note import (
    AmbiguousVerifier,
    CosignatureV1Signer,
    CosignatureV1Verifier,
    EcdsaSigner,
    EcdsaVerifier,
    Ed25519Signer,
    Ed25519Verifier,
    InvalidNoteKey,
    InvalidNoteSignature,
    MalformedNote,
    Note,
    NoteSignature,
    NoteSigner,
    NoteSigningFailed,
    NoteVerifier,
    UnverifiedNote,
    Verifiers,
    open_note,
    parse_note,
    parse_vkey,
    sign_note,
)

from ._vectors import load

V = load("signed-notes.json")
S = V["sumdb"]
TEXT: str = S["text"]
PETER_SIG: str = S["peterSig"]
ENOCH_SIG: str = S["enochSig"]
PETER = parse_vkey(S["peterVkey"])
ENOCH = parse_vkey(S["enochVkey"])


def _msg(*parts: str) -> bytes:
    return "".join(parts).encode("utf-8")


# ---- keys -----------------------------------------------------------------------------------


def test_sumdb_keys_round_trip() -> None:
    signer = Ed25519Signer.from_skey(S["peterSkey"])
    assert signer.name == "PeterNeumann"
    assert signer.key_id == 0xC74F20A3
    assert signer.vkey == S["peterVkey"]
    assert signer.skey == S["peterSkey"]
    assert "AYEK" not in repr(signer)  # the seed never appears in a repr
    assert isinstance(PETER, Ed25519Verifier)
    assert PETER.vkey == S["peterVkey"]
    assert isinstance(signer, NoteSigner) and isinstance(PETER, NoteVerifier)


def _mangled(key: str) -> list[str]:
    out = {key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1)}
    out.discard(key)
    for i in range(len(key)):
        out.add(key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :])
    return sorted(out)


def test_every_mangled_vkey_is_refused() -> None:
    # sumdb/note TestNewVerifier: every proper substring and every one-character change fails.
    for bad in [*_mangled(S["peterVkey"]), *S["badVkeys"]]:
        with pytest.raises(InvalidNoteKey):
            parse_vkey(bad)


def test_every_mangled_skey_is_refused() -> None:
    for bad in _mangled(S["peterSkey"]):
        with pytest.raises(InvalidNoteKey):
            Ed25519Signer.from_skey(bad)


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "name",
        "name+c74f20a3",
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX",
    ],
)
def test_hostile_vkeys(vkey: str) -> None:
    with pytest.raises(InvalidNoteKey) as info:
        parse_vkey(vkey)
    assert isinstance(info.value, InvalidInput)
    assert info.value.code == "TLOG_NOTE_KEY_INVALID"


def test_vkey_must_be_text() -> None:
    with pytest.raises(InvalidNoteKey):
        parse_vkey(b"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")  # type: ignore[arg-type]


def test_generated_keys_are_self_consistent() -> None:
    signer = Ed25519Signer.generate("EnochRoot")
    verifier = parse_vkey(signer.vkey)
    assert (verifier.name, verifier.key_id) == (signer.name, signer.key_id)
    assert verifier.verify(b"hi", signer.sign(b"hi"))
    assert not verifier.verify(b"hj", signer.sign(b"hi"))
    bad = bytearray(signer.sign(b"hi"))
    bad[0] ^= 1
    assert not verifier.verify(b"hi", bytes(bad))
    assert Ed25519Signer.from_skey(signer.skey).vkey == signer.vkey
    with pytest.raises(InvalidNoteKey):
        Ed25519Signer("bad name", b"\x00" * 32)
    with pytest.raises(InvalidNoteKey):
        Ed25519Signer("name", b"\x00" * 31)


# ---- signing --------------------------------------------------------------------------------


def test_sign_is_byte_exact() -> None:
    signer = Ed25519Signer.from_skey(S["peterSkey"])
    assert sign_note(TEXT, signer) == S["signedByPeter"].encode("utf-8")


def test_sign_replaces_the_signers_own_signature_and_keeps_others() -> None:
    signer = Ed25519Signer.from_skey(S["peterSkey"])
    old = NoteSignature("PeterNeumann", 0xC74F20A3, b"BADSIG")
    enoch = parse_note(_msg(TEXT, "\n", ENOCH_SIG)).signatures[0]
    signed = sign_note(Note(TEXT, (old, enoch)), signer)
    assert signed == _msg(TEXT, "\n", PETER_SIG, ENOCH_SIG)


def test_sign_refuses_bad_input() -> None:
    signer = Ed25519Signer.from_skey(S["peterSkey"])
    for text in ("abc", "", "a\x01b\n", "tab\there\n"):
        with pytest.raises(MalformedNote):
            sign_note(text, signer)
    with pytest.raises(MalformedNote):
        NoteSignature("a+b", 1, b"sig")
    with pytest.raises(MalformedNote):
        NoteSignature("name", 1 << 32, b"sig")
    with pytest.raises(MalformedNote):
        NoteSignature("name", 1, b"")
    with pytest.raises(MalformedNote):
        Note(TEXT).encode()

    class BadName:
        name = "bad name"
        key_id = 1

        def sign(self, message: bytes, /) -> bytes:
            return b"x"

    class Failing:
        name = "ok"
        key_id = 1

        def sign(self, message: bytes, /) -> bytes:
            raise RuntimeError("surprise")

    class Silent:
        name = "ok"
        key_id = 1

        def sign(self, message: bytes, /) -> bytes:
            return b""

    with pytest.raises(InvalidNoteKey):
        sign_note(TEXT, BadName())
    with pytest.raises(RuntimeError, match="surprise"):
        sign_note(TEXT, Failing())
    with pytest.raises(NoteSigningFailed):
        sign_note(TEXT, Silent())


# ---- opening --------------------------------------------------------------------------------


def test_one_verified_one_unknown() -> None:
    n = open_note(_msg(TEXT, "\n", PETER_SIG, ENOCH_SIG), [PETER])
    assert n.text == TEXT
    assert [s.line for s in n.verified] == [PETER_SIG]
    assert [s.line for s in n.unverified] == [ENOCH_SIG]


def test_both_verified() -> None:
    n = open_note(_msg(TEXT, "\n", PETER_SIG, ENOCH_SIG), Verifiers([PETER, ENOCH]))
    assert [s.line for s in n.verified] == [PETER_SIG, ENOCH_SIG]
    assert n.unverified == ()


def test_no_known_signer() -> None:
    with pytest.raises(UnverifiedNote) as info:
        open_note(_msg(TEXT, "\n", PETER_SIG, ENOCH_SIG), [])
    assert isinstance(info.value, VerificationFailed)
    assert info.value.code == "TLOG_NOTE_UNVERIFIED"
    assert [s.line for s in info.value.note.signatures] == [PETER_SIG, ENOCH_SIG]
    assert "PeterNeumann+c74f20a3" in info.value.message


def test_ambiguous_verifiers() -> None:
    with pytest.raises(AmbiguousVerifier, match="ambiguous key EnochRoot\\+af0cfe78"):
        open_note(_msg(TEXT, "\n", ENOCH_SIG), [ENOCH, PETER, ENOCH])
    # An ambiguous key that no signature uses does no harm.
    open_note(_msg(TEXT, "\n", PETER_SIG), [ENOCH, PETER, ENOCH])
    assert len(Verifiers([ENOCH, PETER, ENOCH])) == 3


def test_too_many_signatures() -> None:
    for verifiers in ([PETER], []):
        with pytest.raises(MalformedNote, match="more than 100"):
            open_note(_msg(TEXT, "\n", PETER_SIG * 101), verifiers)
    # The spec requires accepting at least 16; duplicates of a verified key count once.
    n = open_note(_msg(TEXT, "\n", PETER_SIG * 100), [PETER])
    assert len(n.verified) == 1
    with pytest.raises(MalformedNote):
        parse_note(_msg(TEXT, "\n", PETER_SIG * 17), max_signatures=16)


def test_invalid_signature_by_known_key_rejects_the_note() -> None:
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(InvalidNoteSignature) as info:
        open_note(_msg(TEXT, "\n", bad), [PETER])
    assert info.value.message == "invalid signature for key PeterNeumann+c74f20a3"
    assert info.value.code == "TLOG_NOTE_SIGNATURE_INVALID"


def test_duplicated_verified_and_unverified_signatures() -> None:
    enoch_abcd = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    n = open_note(_msg(TEXT, "\n", PETER_SIG, PETER_SIG, ENOCH_SIG, ENOCH_SIG, enoch_abcd), [PETER])
    assert [s.line for s in n.verified] == [PETER_SIG]
    assert [s.line for s in n.unverified] == [ENOCH_SIG, enoch_abcd]


BAD_MESSAGES: list[bytes] = [
    _msg(TEXT),
    _msg(TEXT, "\n"),
    _msg(TEXT, "\n", PETER_SIG[:-1]),
    _msg("\x01", TEXT, "\n", PETER_SIG),
    b"\xff" + _msg(TEXT, "\n", PETER_SIG),
    _msg(TEXT, "\n", PETER_SIG.replace("PeterNeumann", "Bad Name")[:-1]),
    _msg(TEXT, "\n", PETER_SIG, "Unexpected line.\n"),
    # Beyond sumdb's list: hostile signature lines.
    _msg(TEXT, "\n", PETER_SIG.replace("— ", "- ")),
    _msg(TEXT, "\n", PETER_SIG.replace("— ", "—")),
    _msg(TEXT, "\n", PETER_SIG.replace("PeterNeumann", "Peter+Neumann")),
    _msg(TEXT, "\n", PETER_SIG.replace("PeterNeumann", "Peter\u00a0Neumann")),
    _msg(TEXT, "\n", PETER_SIG.replace("PeterNeumann ", "PeterNeumann  ")),
    _msg(TEXT, "\n", PETER_SIG.replace("AM=", "AN=")),  # non-canonical base64 padding bits
    _msg(TEXT, "\n", PETER_SIG.replace("AM=", "AM")),
    _msg(TEXT, "\n", "— PeterNeumann x08gow==\n"),  # key ID and no signature
    _msg(TEXT, "\n", "— PeterNeumann \n"),
    _msg(TEXT, "\n", PETER_SIG, "\n"),
    _msg(TEXT, "\r\n", PETER_SIG),
    _msg(TEXT, "\n", PETER_SIG[:-1], "\r\n"),
    b"\xed\xa0\x80\n\n" + _msg(PETER_SIG),  # an encoded surrogate
    b"",
]


@pytest.mark.parametrize("message", BAD_MESSAGES, ids=range(len(BAD_MESSAGES)))
def test_malformed_notes(message: bytes) -> None:
    with pytest.raises(MalformedNote) as info:
        open_note(message, [PETER])
    assert info.value.code == "TLOG_NOTE_MALFORMED"
    assert info.value.exit_code == 2


def test_parse_note_refuses_text() -> None:
    with pytest.raises(MalformedNote):
        parse_note(_msg(TEXT, "\n", PETER_SIG).decode())  # type: ignore[arg-type]


def test_text_may_contain_blank_lines_and_round_trips() -> None:
    signer = Ed25519Signer.generate("example.com/log")
    text = "first\n\nthird\n\n"
    signed = sign_note(text, signer)
    n = open_note(signed, [signer.verifier()])
    assert n.text == text
    assert parse_note(signed).encode() == signed


# ---- C2SP and ECDSA vectors -----------------------------------------------------------------


def test_c2sp_example() -> None:
    c = V["c2sp"]
    n = open_note(c["signed"].encode(), [parse_vkey(c["vkey"])])
    assert n.text == "This is an example message.\n"
    assert parse_note(c["signed"].encode()).encode() == c["signed"].encode()


def test_c2sp_opening_example_is_parsed_but_unverified() -> None:
    signed = V["c2sp"]["unknownKeyNote"]["signed"].encode()
    n = parse_note(signed)
    assert n.text.endswith("ed è subito sera.\n")
    assert n.signatures[0].name == "quasimodo.example/salvatore"
    assert n.encode() == signed
    with pytest.raises(UnverifiedNote):
        open_note(signed, [PETER])


@pytest.mark.parametrize(
    ("vkey", "signed"), [("rekorVkey", "rekorNote"), ("pixelVkey", "pixelNote")]
)
def test_transparency_dev_ecdsa_notes(vkey: str, signed: str) -> None:
    e = V["ecdsa"]
    verifier = parse_vkey(e[vkey])
    assert isinstance(verifier, EcdsaVerifier)
    assert verifier.vkey == e[vkey]
    n = open_note(e[signed].encode(), [verifier])
    assert len(n.verified) == 1


def test_transparency_dev_ecdsa_failures() -> None:
    e = V["ecdsa"]
    for bad in e["badVkeys"]:
        with pytest.raises(InvalidNoteKey):
            parse_vkey(bad)
    # The same key under another name is another key: the note is signed by nobody we know.
    renamed = "bananas.sigstore.dev+" + e["rekorVkey"].split("+", 1)[1]
    with pytest.raises(UnverifiedNote):
        open_note(e["rekorNote"].encode(), [parse_vkey(renamed)])
    with pytest.raises(VerificationFailed):
        open_note(e["rekorBadSigNote"].encode(), [parse_vkey(e["rekorVkey"])])


def test_rekor_key_id_rule() -> None:
    verifier = parse_vkey(V["ecdsa"]["rekorVkey"])
    assert isinstance(verifier, EcdsaVerifier)
    assert verifier.key_id == 0xC0D23D6A == note.rekor_key_id(verifier.public_key)
    der = note.pkix_der(verifier.public_key)
    assert note.rekor_log_id(verifier.public_key) == hashlib.sha256(der).digest()


class HsmLikeSigner:
    """What safeguard.keys' PKCS#11 signer looks like: hash in Python, sign the digest."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    def sign(self, data: bytes, /) -> bytes:
        digest = hashlib.sha256(data).digest()
        return self._key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_ecdsa_signer_with_any_raw_signer() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = EcdsaSigner("log.example/1", HsmLikeSigner(key), key.public_key())
    signed = sign_note("log.example/1\n1\n" + "A" * 43 + "=\n", signer)
    verifier = parse_vkey(signer.vkey)
    assert verifier.key_id == signer.key_id == note.rekor_key_id(key.public_key())
    assert open_note(signed, [verifier]).verified[0].name == "log.example/1"
    from_file = EcdsaSigner.from_private_key("log.example/1", key)
    assert open_note(sign_note("x\n", from_file), [verifier]).text == "x\n"


def test_ecdsa_signer_from_a_safeguard_keys_signer() -> None:
    from safeguard.keys.software import SoftwareSigner

    signer = EcdsaSigner.from_signer("log.example/1", SoftwareSigner.generate())
    signed = sign_note("log.example/1\n0\n" + "A" * 43 + "=\n", signer)
    assert open_note(signed, [parse_vkey(signer.vkey)]).verified[0].key_id == signer.key_id
    with pytest.raises(InvalidNoteKey):
        EcdsaSigner.from_signer("x", SoftwareSigner(Ed25519PrivateKey.generate()))


def test_ecdsa_signer_refuses_a_signer_with_another_key() -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    signer = EcdsaSigner("log.example/1", HsmLikeSigner(other), key.public_key())
    with pytest.raises(NoteSigningFailed, match="does not verify"):
        sign_note("x\n", signer)
    with pytest.raises(InvalidNoteKey):
        EcdsaVerifier("log.example/1", Ed25519Signer.generate("x").public_key)  # type: ignore[arg-type]


def test_ecdsa_verifier_rejects_garbage_signatures() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    verifier = EcdsaVerifier("n", key.public_key())
    for sig in (b"", b"\x30", b"\x30\x00", b"x" * 72):
        assert not verifier.verify(b"x\n", sig)


# ---- cosignatures (c2sp.org/tlog-cosignature) -------------------------------------------------

CHECKPOINT_TEXT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)


def test_cosignature_message_matches_the_spec_example() -> None:
    example = V["c2sp"]["checkpointExample"]
    assert (
        note.cosignature_message(CHECKPOINT_TEXT, 1679315147) == example["cosignedMessage"].encode()
    )
    witness = parse_note(example["signed"].encode()).signatures[1]
    assert witness.name == "witness.example.com/w1"
    assert note.cosignature_timestamp(witness.signature) == 1679315147
    with pytest.raises(ValueError):
        note.cosignature_message(CHECKPOINT_TEXT, 1 << 63)


def test_cosignature_round_trip() -> None:
    seed = bytes(range(32))
    witness = CosignatureV1Signer("witness.example/w1", seed, clock=lambda: 1700000000.7)
    log = Ed25519Signer.generate("example.com/behind-the-sofa")
    signed = sign_note(CHECKPOINT_TEXT, log)
    cosigned = sign_note(parse_note(signed), witness)
    verifier = parse_vkey(witness.vkey)
    assert isinstance(verifier, CosignatureV1Verifier)
    assert witness.vkey.split("+")[2].startswith("B")  # type byte 0x04
    n = open_note(cosigned, [log.verifier(), verifier])
    assert [s.name for s in n.verified] == ["witness.example/w1", "example.com/behind-the-sofa"]
    assert note.cosignature_timestamp(n.verified[0].signature) == 1700000000
    # The same Ed25519 key as a plain note signer has another key ID: a cosignature cannot be
    # replayed as a log signature, nor the reverse.
    assert Ed25519Verifier(verifier.name, verifier.public_key).key_id != verifier.key_id


def test_cosignature_covers_timestamp_and_extension_lines() -> None:
    witness = CosignatureV1Signer("w", bytes(32), clock=lambda: 5)
    text = CHECKPOINT_TEXT + "Extendo\n"
    sig = witness.sign(text.encode())
    verifier = witness.verifier()
    assert verifier.verify(text.encode(), sig)
    assert not verifier.verify(text.replace("Extendo", "Extendp").encode(), sig)
    assert not verifier.verify(text.encode(), (6).to_bytes(8, "big") + sig[8:])
    assert not verifier.verify(text.encode(), sig[:-1])
    assert not verifier.verify(text.encode(), b"\xff" * 8 + sig[8:])
    assert not verifier.verify(b"one line\n", sig)
    with pytest.raises(NoteSigningFailed):
        witness.sign(b"nobbled")
    with pytest.raises(MalformedNote):
        note.cosignature_timestamp(sig[:-1])


def test_transparency_dev_cosignature_vkey() -> None:
    (vkey,) = V["cosignatureVkeys"]["valid"]
    verifier = parse_vkey(vkey)
    assert isinstance(verifier, CosignatureV1Verifier)
    assert verifier.vkey == vkey


# ---- properties -------------------------------------------------------------------------------

SIGNER = Ed25519Signer(name="prop.example/log", seed=bytes(32))
VERIFIER = SIGNER.verifier()
note_text = st.lists(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=30),
    max_size=4,
).map(lambda lines: "\n".join(lines) + "\n")


@settings(max_examples=200, deadline=None)
@given(note_text)
def test_sign_then_open_round_trips(text: str) -> None:
    signed = sign_note(text, SIGNER)
    assert open_note(signed, [VERIFIER]).text == text
    assert parse_note(signed).encode() == signed


@settings(max_examples=300, deadline=None)
@given(note_text, st.data())
def test_any_single_bit_flip_is_refused(text: str, data: st.DataObject) -> None:
    signed = bytearray(sign_note(text, SIGNER))
    bit = data.draw(st.integers(0, len(signed) * 8 - 1))
    signed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises((MalformedNote, InvalidNoteSignature, UnverifiedNote)):
        open_note(bytes(signed), [VERIFIER])


def test_errors_are_typed_for_the_surfaces() -> None:
    errors: list[Any] = [MalformedNote("x"), InvalidNoteKey("x"), AmbiguousVerifier("x")]
    assert all(e.exit_code == 2 and e.http_status == 400 for e in errors)
    assert InvalidNoteSignature("n", 1).exit_code == 1
