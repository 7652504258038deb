"""Keyless signing needs Fulcio, Rekor and TUF over the network, which tests here cannot reach;
we check only that it fails clearly, and before any network access, without an identity."""

from __future__ import annotations

import pytest

from safeguard.keys.errors import KeylessUnavailable
from safeguard.keys.keyless import KeylessSigner


def test_no_identity_token() -> None:
    with pytest.raises(KeylessUnavailable) as info:
        KeylessSigner()
    assert info.value.hint


def test_malformed_identity_token() -> None:
    with pytest.raises(KeylessUnavailable, match="identity token"):
        KeylessSigner("not.a.jwt")
