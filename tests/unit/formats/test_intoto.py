from __future__ import annotations

import base64
import json

import pytest

from safeguard.core.digest import Digest
from safeguard.formats.errors import StatementInvalid
from safeguard.formats.intoto import (
    STATEMENT_V01,
    STATEMENT_V1,
    Statement,
    Subject,
    build_statement,
)
from tests.unit.formats.vectors import read

D_TXT = "sha256:330a043220fa13e01d68a7db39c89e12b0c4c3b6a0346fe624b0903f1303b5b2"


def _conformance_statement() -> bytes:
    bundle = json.loads(read("conformance/intoto-with-custom-trust-root/bundle.sigstore.json"))
    return base64.b64decode(bundle["dsseEnvelope"]["payload"])


def test_parses_published_statement_and_matches_its_artifact() -> None:
    statement = Statement.from_json(_conformance_statement())
    assert statement.predicate_type == "https://slsa.dev/provenance/v1"
    artifact = read("conformance/intoto-with-custom-trust-root/artifact")
    assert statement.is_about(Digest.of(artifact))
    assert statement.subject_matching(D_TXT) == Subject("d.txt", {"sha256": D_TXT[7:]})
    assert not statement.is_about(Digest.of(b"other"))
    assert not statement.is_about(Digest.of(artifact, "sha512"))


def test_build_round_trip_and_field_order() -> None:
    statement = build_statement(
        [Subject.for_digest("img", D_TXT)], "https://example.com/p", {"k": "é"}
    )
    raw = statement.to_json()
    assert raw.startswith(b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"img",')
    assert "é".encode() in raw
    assert Statement.from_json(raw) == statement


def test_v01_is_read() -> None:
    doc = json.loads(_conformance_statement())
    doc["_type"] = STATEMENT_V01
    assert Statement.from_dict(doc).type == STATEMENT_V01


def test_uppercase_hex_subject_still_matches() -> None:
    statement = build_statement([Subject("x", {"sha256": D_TXT[7:].upper()})], "p", None)
    assert statement.is_about(D_TXT)


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"_type": "https://in-toto.io/Statement/v2", "subject": [], "predicateType": "p"},
        {"_type": "https://in-toto.io/Statement/v1", "subject": [], "predicateType": "p"},
        {"_type": "https://in-toto.io/Statement/v1", "predicateType": "p"},
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "a"}],
            "predicateType": "p",
        },
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": "xyz"}}],
            "predicateType": "p",
        },
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": "ab"}}],
            "predicateType": "p",
        },
        {"_type": "https://in-toto.io/Statement/v1", "subject": ["x"], "predicateType": "p"},
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": 1, "digest": {"a": "b"}}],
            "predicateType": "p",
        },
        {"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {"a": "bb"}}]},
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"a": "bb"}}],
            "predicateType": "p",
            "predicate": [],
        },
    ],
)
def test_hostile_statements(doc: object) -> None:
    with pytest.raises(StatementInvalid):
        Statement.from_json(json.dumps(doc))


def test_non_json_statement() -> None:
    with pytest.raises(StatementInvalid):
        Statement.from_json(b"\x00\x01")


def _statement(*digest_sets: dict[str, object]) -> Statement:
    return Statement.from_json(
        json.dumps(
            {
                "_type": STATEMENT_V1,
                "subject": [{"name": f"s{i}", "digest": d} for i, d in enumerate(digest_sets)],
                "predicateType": "p",
            }
        )
    )


SHA256_HEX = D_TXT[7:]


def test_git_objects_may_be_sha1_or_sha256() -> None:
    """digest_set.md: gitCommit/gitTree/gitBlob/gitTag are 40 (SHA-1) or 64 (SHA-256) hex."""
    for algorithm in ("gitCommit", "gitTree", "gitBlob", "gitTag"):
        for value in ("a" * 40, "b" * 64):
            assert _statement({algorithm: value}).subjects[0].digest == {algorithm: value}
        with pytest.raises(StatementInvalid, match="40 or 64"):
            _statement({algorithm: "c" * 50})


def test_unrecognised_algorithms_are_kept_but_ignored() -> None:
    """Consumers MUST ignore unrecognised algorithms: they never refuse a statement, are never
    validated and never match; the recognised ones beside them still do."""
    statement = _statement(
        {"sha256": SHA256_HEX, "somecoolhash": "not hex at all!", "purl": "pkg:oci/x"},
        {"somecoolhash": "abcd", "weird": 42},
    )
    first, second = statement.subjects
    assert first.digest["somecoolhash"] == "not hex at all!"
    assert second.digest == {"somecoolhash": "abcd"}  # the non-string value is dropped
    assert statement.subject_matching(D_TXT) is first
    assert not second.matches(D_TXT)
    only_unknown = _statement({"sha256x": SHA256_HEX})
    assert not only_unknown.is_about(D_TXT)  # a look-alike name is not sha256


def test_recognised_algorithms_are_still_checked() -> None:
    for digest_set in (
        {"sha256": "xyz"},
        {"sha256": "ab"},
        {"sha512": "a" * 64},
        {"sha1": "a" * 64},
        {"md5": "z" * 32},
        {"sha256": 7},
    ):
        with pytest.raises(StatementInvalid):
            _statement({"somecoolhash": "ok", **digest_set})


def test_any_accepted_algorithm_matches() -> None:
    """digest_set.md examples; and sha384 subjects match sha384 digests."""
    import hashlib

    data = b"artifact"
    sha384 = hashlib.sha384(data).hexdigest()
    statement = _statement({"sha512": hashlib.sha512(data).hexdigest(), "sha384": sha384})
    assert statement.is_about(f"sha384:{sha384}")
    assert statement.is_about(Digest.of(data, "sha512"))
    assert not statement.is_about(Digest.of(data))  # no sha256 in the set
