"""How a CI job obtains the ID token that proves which build role it is.

Signing happens in CI only: the token is what makes a signature attributable to a repository,
ref and workflow rather than to a person's laptop, so there is deliberately no interactive or
browser flow here. Sources, in order:

1. an explicit token (``--identity-token``): the token itself, or the path of a file holding it
   (as cosign's ``--identity-token`` accepts);
2. a token file (``--identity-token-file``);
3. an environment variable holding the token: ``SAFEGUARD_ID_TOKEN``, then ``SIGSTORE_ID_TOKEN``.
   This is how GitLab CI hands tokens to jobs (``id_tokens: {SIGSTORE_ID_TOKEN: {aud: ...}}``,
   docs.gitlab.com "OpenID Connect (OIDC) Authentication Using ID Tokens"). A variable whose
   token is for another audience is skipped, and reported if nothing else fits;
4. GitHub Actions' token request (docs.github.com "OpenID Connect reference", "Updating your
   actions for OIDC"): ``GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=<aud>`` with
   ``Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN``, answering ``{"value": "<jwt>"}``.
   The URL already carries a query (``?api-version=2.0``), so the audience is appended with
   ``&``, URL-encoded; it is never passed through httpx ``params=``, which would replace the
   existing query. The variables exist only in jobs with ``permissions: id-token: write``.

With none of these, ``CITokenUnavailable`` explains how to configure the CI job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote

import httpx

from safeguard.core.errors import SafeguardError
from safeguard.identity.errors import CITokenRequestFailed, CITokenUnavailable, OIDCTokenMalformed
from safeguard.identity.http import DEFAULT_TIMEOUT, get_json
from safeguard.identity.tokens import MAX_TOKEN_BYTES, parse_token

ENV_TOKEN_VARS: Final = ("SAFEGUARD_ID_TOKEN", "SIGSTORE_ID_TOKEN")
GITHUB_REQUEST_URL: Final = "ACTIONS_ID_TOKEN_REQUEST_URL"
GITHUB_REQUEST_TOKEN: Final = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"

_GITHUB_SETUP: Final = (
    "in GitHub Actions, grant the signing job `permissions: id-token: write`"
    " (tokens are withheld from pull requests of forks)"
)


def _gitlab_setup(audience: str) -> str:
    return (
        "in GitLab CI, add to the signing job `id_tokens: {SIGSTORE_ID_TOKEN: {aud: "
        f"{audience}}}}}`"
    )


@dataclass(frozen=True, slots=True)
class CIToken:
    """A CI ID token and where it came from (``value`` is a secret: never log it)."""

    value: str
    source: str

    def __repr__(self) -> str:
        return f"CIToken(source={self.source!r}, value=<redacted>)"


def _audiences(token: str) -> list[str]:
    aud = parse_token(token).claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def _read_token_file(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_TOKEN_BYTES + 2)
    except OSError as exc:
        raise CITokenUnavailable(
            f"cannot read the identity token file {path}: {exc.strerror or exc}"
        ) from None
    try:
        return raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise OIDCTokenMalformed(f"the identity token file {path} is not ASCII text") from None


def _checked(value: str, source: str, audience: str) -> CIToken:
    value = value.strip()
    auds = _audiences(value)  # also refuses a malformed token early, with its specific error
    if audience not in auds:
        raise CITokenUnavailable(
            f"the identity token from {source} is for audience {auds!r}, not {audience!r}",
            hint=f"request the token for audience {audience!r}",
        )
    return CIToken(value=value, source=source)


def _explicit(identity_token: str, audience: str) -> CIToken:
    """A token given on the command line: the token itself, or a file that holds it."""
    candidate = Path(identity_token)
    try:
        is_file = identity_token.count(".") != 2 and candidate.is_file()
    except (OSError, ValueError):
        is_file = False
    if is_file:
        return _checked(_read_token_file(candidate), f"file {candidate}", audience)
    return _checked(identity_token, "--identity-token", audience)


async def _github_token(
    url: str, bearer: str, audience: str, client: httpx.AsyncClient | None, request_timeout: float
) -> CIToken:
    full = f"{url}{'&' if '?' in url else '?'}audience={quote(audience, safe='')}"
    own = client is None
    http = client if client is not None else httpx.AsyncClient(timeout=request_timeout)
    try:
        _, body = await get_json(
            http,
            full,
            what="GitHub Actions ID token endpoint",
            headers={"Authorization": f"bearer {bearer}", "Accept": "application/json"},
            max_bytes=MAX_TOKEN_BYTES * 2,
            invalid=CITokenRequestFailed,
            unreachable=CITokenRequestFailed,
        )
    except CITokenRequestFailed as exc:
        status = exc.detail.get("status") if isinstance(exc.detail, dict) else None
        if status in (401, 403):
            raise CITokenRequestFailed(
                f"GitHub Actions refused the ID token request (HTTP {status})",
                hint=_GITHUB_SETUP,
                detail={"status": status},
            ) from None
        raise
    finally:
        if own:
            await http.aclose()
    value = body.get("value") if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise CITokenRequestFailed(
            "the GitHub Actions ID token endpoint answered without a token 'value'",
            hint="retry the job; if it persists, GitHub's token service is misbehaving",
        )
    try:
        parse_token(value)
    except OIDCTokenMalformed as exc:
        raise CITokenRequestFailed(
            f"the GitHub Actions ID token endpoint answered a malformed token: {exc.message}"
        ) from None
    return CIToken(value=value, source="github-actions")


async def get_ci_token(
    audience: str,
    *,
    identity_token: str | None = None,
    token_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    client: httpx.AsyncClient | None = None,
    request_timeout: float = DEFAULT_TIMEOUT,
) -> CIToken:
    """The CI job's ID token for ``audience``, from the first source that has one (module doc).

    ``env`` defaults to ``os.environ``; ``client`` is used for the GitHub Actions request.
    """
    if not audience:
        raise CITokenUnavailable("no audience to request an identity token for")
    environ = os.environ if env is None else env
    if identity_token is not None:
        return _explicit(identity_token, audience)
    if token_file is not None:
        path = Path(token_file)
        return _checked(_read_token_file(path), f"file {path}", audience)

    wrong: list[str] = []
    for var in ENV_TOKEN_VARS:
        value = environ.get(var, "").strip()
        if not value:
            continue
        try:
            return _checked(value, f"${var}", audience)
        except CITokenUnavailable as exc:
            wrong.append(exc.message)

    url = environ.get(GITHUB_REQUEST_URL, "")
    bearer = environ.get(GITHUB_REQUEST_TOKEN, "")
    if url and bearer:
        return await _github_token(url, bearer, audience, client, request_timeout)
    if wrong:
        raise CITokenUnavailable(
            "; ".join(wrong),
            hint=_gitlab_setup(audience) if environ.get("GITLAB_CI") else None,
        )
    if url or bearer:
        missing = GITHUB_REQUEST_TOKEN if url else GITHUB_REQUEST_URL
        raise CITokenUnavailable(
            f"{missing} is not set, so no ID token can be requested", hint=_GITHUB_SETUP
        )
    raise _unavailable(environ, audience)


def _unavailable(environ: Mapping[str, str], audience: str) -> SafeguardError:
    if environ.get("GITHUB_ACTIONS") == "true":
        return CITokenUnavailable(
            f"this GitHub Actions job cannot request an ID token ({GITHUB_REQUEST_URL} is not set)",
            hint=_GITHUB_SETUP,
        )
    if environ.get("GITLAB_CI") == "true":
        return CITokenUnavailable(
            f"this GitLab CI job has no ID token in {' or '.join(ENV_TOKEN_VARS)}",
            hint=_gitlab_setup(audience),
        )
    return CITokenUnavailable(
        "no CI identity token is available: signing happens in CI only, so a laptop or a "
        "shell outside a CI job cannot sign",
        hint=f"run the signing step in a CI job: {_GITHUB_SETUP}; or {_gitlab_setup(audience)}; "
        "or pass a token the CI job issued with --identity-token",
    )
