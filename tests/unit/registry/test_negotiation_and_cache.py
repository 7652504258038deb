"""Accept-header negotiation for manifests and the in-process manifest cache."""

from __future__ import annotations

import pytest

from safeguard.core.errors import OCIError, OCIErrorCode
from safeguard.registry.context import ManifestCache, check_digest, check_name, check_tag
from safeguard.registry.manifests import accepts
from safeguard.registry.metadata import ManifestRecord

OCI = "application/vnd.oci.image.manifest.v1+json"
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], True),
        ([""], True),
        ([OCI], True),
        ([DOCKER], False),
        ([DOCKER, OCI], True),  # several Accept headers
        ([f"{DOCKER}, {OCI}"], True),
        ([f"{OCI};q=0"], False),
        ([f"{OCI}; q=0.0, */*;q=0.1"], True),
        (["*/*"], True),
        (["application/*"], True),
        (["text/*"], False),
        ([f"{OCI};q=abc"], True),
        (["APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON"], True),
    ],
)
def test_accepts(values: list[str], expected: bool) -> None:
    assert accepts(values, OCI) is expected


def _record(digest: str) -> ManifestRecord:
    return ManifestRecord(digest, OCI, b"{}")


def test_cache_is_lru_bounded() -> None:
    cache = ManifestCache(size=2)
    cache.put("r", _record("sha256:a"))
    cache.put("r", _record("sha256:b"))
    assert cache.get("r", "sha256:a") is not None  # a is now the most recent
    cache.put("r", _record("sha256:c"))
    assert cache.get("r", "sha256:b") is None
    assert cache.get("r", "sha256:a") is not None
    assert cache.get("other", "sha256:a") is None
    cache.drop("r", "sha256:a")
    assert cache.get("r", "sha256:a") is None


def test_cache_entries_expire() -> None:
    cache = ManifestCache(size=10, ttl=-1)
    cache.put("r", _record("sha256:a"))
    assert cache.get("r", "sha256:a") is None
    disabled = ManifestCache(size=0)
    disabled.put("r", _record("sha256:a"))
    assert disabled.get("r", "sha256:a") is None


@pytest.mark.parametrize(
    ("check", "value", "code"),
    [
        (check_name, "../x", OCIErrorCode.NAME_INVALID),
        (check_name, "a" * 256, OCIErrorCode.NAME_INVALID),
        (check_tag, "-x", OCIErrorCode.TAG_INVALID),
        (check_digest, "sha256:xyz", OCIErrorCode.DIGEST_INVALID),
    ],
)
def test_url_checks_raise_spec_errors(check: object, value: str, code: OCIErrorCode) -> None:
    with pytest.raises(OCIError) as info:
        check(value)  # type: ignore[operator]
    assert info.value.oci_code is code
    assert info.value.status == 400


def test_cache_is_bounded_in_bytes() -> None:
    cache = ManifestCache(size=100, max_bytes=10, max_item=6)
    cache.put("r", ManifestRecord("sha256:big", OCI, b"x" * 7))
    assert cache.get("r", "sha256:big") is None  # larger than one item may be
    for name in "abc":
        cache.put("r", ManifestRecord(f"sha256:{name}", OCI, b"x" * 4))
    assert cache.bytes <= 10
    assert cache.get("r", "sha256:a") is None
    assert cache.get("r", "sha256:c") is not None
    cache.put("r", ManifestRecord("sha256:c", OCI, b"x" * 4))  # replacing keeps the count right
    assert cache.bytes == 8
    cache.drop("r", "sha256:b")
    cache.drop("r", "sha256:c")
    assert cache.bytes == 0
