"""The referrers tag schema's tag (distribution spec "Referrers Tag Schema") and locations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidName, InvalidReference, InvalidTag
from safeguard.oci.errors import registry_error
from safeguard.oci.location import parse_location
from safeguard.oci.referrers import parse_referrers_index, referrers_tag


def test_sha256_tag_is_alg_dash_hex() -> None:
    d = Digest.parse("sha256:" + "a" * 64)
    assert referrers_tag(d) == "sha256-" + "a" * 64 == d.tag_form


def test_sha512_tag_is_truncated_to_64() -> None:
    d = Digest.parse("sha512:" + "a" * 128)
    assert referrers_tag(d) == "sha512-" + "a" * 64


def test_spec_example_with_separators_and_truncation() -> None:
    # The third row of the spec's table; Digest.parse would refuse the algorithm, so build it.
    d = Digest(
        "test+algorithm+using+algorithm+separators+and+lots+of+characters+to+excercise+overall"
        "+truncation",
        "alsoSome=InTheEncodedSectionToShowHyphenReplacementAndLotsAndLotsOfCharactersToExcercise"
        "EncodedTruncation",
    )
    assert referrers_tag(d) == (
        "test-algorithm-using-algorithm-s-alsoSome-InTheEncodedSectionToShowHyphenReplacement"
        "AndLotsAndLot"
    )


def test_referrers_index_must_be_an_oci_index() -> None:
    with pytest.raises(Exception, match="not a valid image index"):
        parse_referrers_index(b"not json", "referrers tag x")
    manifest = (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a/b","digest":"sha256:'
        + b"0" * 64
        + b'","size":1},"layers":[]}'
    )
    with pytest.raises(Exception, match="not an OCI image index"):
        parse_referrers_index(manifest, "referrers tag x")
    empty = (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
    )
    assert parse_referrers_index(empty, "x") == ()


def test_layout_locations() -> None:
    loc = parse_location("oci:/tmp/layout:v1")
    assert (loc.path, loc.tag, loc.is_layout) == (Path("/tmp/layout"), "v1", True)
    assert parse_location("oci:relative/dir").tag is None
    assert str(parse_location("oci:/x:t")) == "oci:/x:t"


def test_registry_locations() -> None:
    loc = parse_location("docker://127.0.0.1:5000/team/app:v1")
    assert loc.reference is not None and loc.reference.tag == "v1" and loc.scheme is None
    assert parse_location("http://r.example/a/b:c").scheme == "http"
    assert parse_location("https://r.example/a/b").scheme == "https"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("127.0.0.1:5000/../etc:v1", InvalidReference),
        ("127.0.0.1:5000/Team/App:v1", InvalidName),
        ("127.0.0.1:5000/" + "a" * 300 + ":v1", InvalidName),
        ("127.0.0.1:5000/app:" + "t" * 200, InvalidTag),
        ("oci:", InvalidReference),
        ("oci:/tmp/x:bad tag", InvalidTag),
        ("oci:/tmp/x:.hidden", InvalidTag),
    ],
)
def test_hostile_locations(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_location(text)


def test_registry_error_keeps_status_code_and_message() -> None:
    entry = {"code": "MANIFEST_UNKNOWN", "message": "manifest unknown", "detail": {"Tag": "x"}}
    body = json.dumps({"errors": [entry]}).encode()
    err = registry_error(404, body, method="GET", url="http://r/v2/a/manifests/x")
    assert (err.status, err.oci_code) == (404, "MANIFEST_UNKNOWN")
    assert "manifest unknown" in err.message
    assert err.detail == {"errors": [entry]}
    plain = registry_error(404, b"404 page not found\n", method="GET", url="http://r/v2/x")
    assert plain.oci_code is None and "404 page not found" in plain.message
