"""Sigstore keyless signing through sigstore-python (Fulcio certificate + Rekor entry).

``KeylessSigner`` wraps ``sigstore.sign.SigningContext``: it exchanges an OIDC identity token
for a short-lived Fulcio certificate, signs, logs the signature in Rekor and returns the result
as a ``safeguard.formats.bundle.Bundle`` (v0.3). It needs the network (TUF trust root, Fulcio,
Rekor), so nothing here is exercised by the test suite beyond its failure modes: it is only
built when a caller asks for it, and it fails with ``KeylessUnavailable`` (and a hint) when
there is no identity token or the trust configuration cannot be fetched.

The identity check happens first, and without network access unless ``ambient=True`` asks for the
CI's ambient credential, so a missing or malformed token is reported before anything is
contacted.
"""

from __future__ import annotations

from typing import Any

from safeguard.formats.bundle import Bundle
from safeguard.keys.errors import KeylessUnavailable


class KeylessSigner:
    """Keyless signer; ``identity_token`` is a raw OIDC JWT. With ``ambient=True`` and no token,
    the CI's ambient credential is fetched (GitHub Actions, GitLab, GCP...: network access)."""

    def __init__(
        self,
        identity_token: str | None = None,
        *,
        ambient: bool = False,
        staging: bool = False,
        trust_config: Any | None = None,
    ) -> None:
        from sigstore.oidc import IdentityError, IdentityToken, detect_credential

        raw = identity_token
        if raw is None and ambient:
            try:
                raw = detect_credential()
            except IdentityError as exc:
                raise KeylessUnavailable(
                    f"ambient OIDC credential detection failed: {exc}",
                    hint="pass an identity token explicitly",
                ) from None
        if not raw:
            raise KeylessUnavailable(
                "no OIDC identity token for keyless signing",
                hint="pass an OIDC identity token, or use ambient=True in a CI job that has one "
                "(GitHub Actions `id-token: write`); or sign with a key instead",
            )
        try:
            self._identity = IdentityToken(raw)
        except IdentityError as exc:
            raise KeylessUnavailable(
                f"the identity token is not usable: {exc}",
                hint="use a fresh OIDC token with audience 'sigstore'",
            ) from None
        self._staging = staging
        self._trust_config = trust_config
        self._context: Any = None

    @property
    def identity(self) -> str:
        return str(self._identity.identity)

    @property
    def issuer(self) -> str:
        return str(self._identity.issuer)

    def _signing_context(self) -> Any:
        if self._context is None:
            from sigstore.models import ClientTrustConfig
            from sigstore.sign import SigningContext

            try:
                config = self._trust_config or (
                    ClientTrustConfig.staging() if self._staging else ClientTrustConfig.production()
                )
                self._context = SigningContext.from_trust_config(config)
            except Exception as exc:
                raise KeylessUnavailable(
                    f"cannot load the Sigstore trust configuration: {exc}",
                    hint="keyless signing needs network access to the Sigstore TUF repository",
                ) from None
        return self._context

    def sign_artifact(self, data: bytes) -> Bundle:
        """Sign ``data`` (hashedrekord entry); returns the v0.3 bundle."""
        with self._signing_context().signer(self._identity) as signer:
            result = signer.sign_artifact(data)
        return Bundle.from_json(result.to_json())

    def sign_statement(self, statement_json: bytes) -> Bundle:
        """Sign an in-toto statement as a DSSE envelope (dsse entry); returns the bundle."""
        from sigstore.dsse import Statement

        with self._signing_context().signer(self._identity) as signer:
            result = signer.sign_dsse(Statement(statement_json))
        return Bundle.from_json(result.to_json())
