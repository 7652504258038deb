from __future__ import annotations

from safeguard.core.errors import (
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    EXIT_VERIFICATION_FAILED,
    InvalidDigest,
    OCIError,
    OCIErrorCode,
    Unreachable,
    VerificationFailed,
)


def test_exit_codes_follow_meaning() -> None:
    assert InvalidDigest("x").exit_code == EXIT_USAGE
    assert VerificationFailed("x").exit_code == EXIT_VERIFICATION_FAILED
    assert Unreachable("x").exit_code == EXIT_UNREACHABLE


def test_oci_error_body_has_spec_shape() -> None:
    err = OCIError(OCIErrorCode.BLOB_UNKNOWN, "blob unknown", status=404, hint="push it first")
    assert err.body() == {
        "errors": [
            {"code": "BLOB_UNKNOWN", "message": "blob unknown", "detail": {"hint": "push it first"}}
        ]
    }


def test_to_dict_carries_code_and_hint() -> None:
    d = InvalidDigest("bad", hint="fix it").to_dict()
    assert d == {"code": "DIGEST_INVALID", "message": "bad", "hint": "fix it"}
