"""Byte-exact against sigstore/sigstore pkg/signature/payload tests and real cosign payloads."""

from __future__ import annotations

import pytest

from safeguard.core.digest import Digest
from safeguard.formats.errors import SimpleSigningInvalid
from safeguard.formats.simplesigning import (
    build_payload,
    cosign_docker_reference,
    parse_payload,
)
from tests.unit.formats.vectors import containers_image_signature

DIGEST = "sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f"


def test_no_claims_matches_sigstore_payload_test() -> None:
    assert build_payload("example.com/test/image", DIGEST) == (
        b'{"critical":{"identity":{"docker-reference":"example.com/test/image"},"image":'
        b'{"docker-manifest-digest":"sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33f'
        b'd34db33fd34db33f"},"type":"cosign container image signature"},"optional":null}'
    )


def test_annotations_sorted_with_go_numbers() -> None:
    payload = build_payload(
        "example.com/cosign/test/image",
        DIGEST,
        {
            "creator": "anyone",
            "some_struct": {"foo": "bar", "false": True, "nothing": None},
            "CamelCase WithSpace": 8.314,
        },
    )
    assert payload.endswith(
        b'"optional":{"CamelCase WithSpace":8.314,"creator":"anyone","some_struct":'
        b'{"false":true,"foo":"bar","nothing":null}}}'
    )
    parsed = parse_payload(payload)
    assert parsed.annotations["creator"] == "anyone"


@pytest.mark.parametrize(
    "directory",
    ["dir-img-cosign-valid", "dir-img-cosign-key-rekor-valid", "dir-img-cosign-fulcio-rekor-valid"],
)
def test_rebuilds_real_cosign_payloads(directory: str) -> None:
    payload = containers_image_signature(directory)["payload"]
    parsed = parse_payload(payload)
    assert build_payload(parsed.docker_reference, parsed.manifest_digest) == payload
    assert parsed.raw == payload


def test_parse_returns_digest_and_reference() -> None:
    parsed = parse_payload(build_payload("docker.io/library/test:1.2.3", DIGEST))
    assert parsed.manifest_digest == Digest.parse(DIGEST)
    assert parsed.docker_reference == "docker.io/library/test:1.2.3"
    assert parsed.optional is None


def test_docker_reference_as_cosign_writes_it() -> None:
    assert cosign_docker_reference("busybox:1") == "index.docker.io/library/busybox"
    assert cosign_docker_reference("localhost:5000/team/app:v1") == "localhost:5000/team/app"


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"critical":[]}',
        b'{"critical":{"type":"atomic container signature","identity":{"docker-reference":"a/b"},'
        b'"image":{"docker-manifest-digest":"' + DIGEST.encode() + b'"}}}',
        b'{"critical":{"type":"cosign container image signature","identity":{},'
        b'"image":{"docker-manifest-digest":"' + DIGEST.encode() + b'"}}}',
        b'{"critical":{"type":"cosign container image signature",'
        b'"identity":{"docker-reference":"a/b"},"image":{}}}',
        b'{"critical":{"type":"cosign container image signature",'
        b'"identity":{"docker-reference":"a/b"},"image":{"docker-manifest-digest":"sha256:abc"}}}',
        b'{"critical":{"type":"cosign container image signature",'
        b'"identity":{"docker-reference":"UPPER/Case"},"image":{"docker-manifest-digest":"'
        + DIGEST.encode()
        + b'"}}}',
        b'{"critical":{"type":"cosign container image signature",'
        b'"identity":{"docker-reference":"a/b"},"image":{"docker-manifest-digest":"'
        + DIGEST.encode()
        + b'"}},"optional":"x"}',
        b'{"critical":{},"critical":{}}',
    ],
)
def test_hostile_payloads_raise_typed_error(data: bytes) -> None:
    with pytest.raises(SimpleSigningInvalid):
        parse_payload(data)


def test_build_rejects_empty_reference() -> None:
    with pytest.raises(SimpleSigningInvalid):
        build_payload("", DIGEST)
