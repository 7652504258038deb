from __future__ import annotations

import base64
import json

import pytest

from safeguard.core.digest import Digest
from safeguard.formats.errors import StatementInvalid
from safeguard.formats.intoto import STATEMENT_V01, Statement, Subject, build_statement
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
