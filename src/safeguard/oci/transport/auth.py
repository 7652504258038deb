"""The registry auth flows: anonymous, HTTP Basic, and Docker's bearer-token flow.

A request goes out with whatever we already hold for its scope. On ``401`` the
``WWW-Authenticate`` challenge decides (distribution's "Token Authentication Specification"):

* ``Basic realm=...``: resend with ``Authorization: Basic`` when we have credentials;
* ``Bearer realm=...,service=...,scope=...``: GET ``realm?service=...&scope=...`` (with Basic
  credentials when we have them, anonymously otherwise), take ``token`` (or ``access_token``),
  cache it for that scope until ``expires_in`` (default 60 s) runs out, and resend once.

Scopes are the token spec's strings, ``repository:<name>:pull[,push]`` or
``registry:catalog:*``; a cache key is the set of scopes a request needs, plus the scope the
registry named in its challenge. Once a host has challenged with Bearer, later scopes fetch their
token before the first request, so request bodies are normally sent only once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import httpx

from safeguard.core.errors import RegistryError, Unreachable
from safeguard.core.reference import validate_repository
from safeguard.httpbounded import aread_bounded
from safeguard.oci.transport.challenge import Challenge, parse_challenges
from safeguard.oci.transport.credentials import Credentials
from safeguard.oci.transport.endpoint import check_url_allowed
from safeguard.oci.transport.urls import append_query

DEFAULT_TOKEN_LIFETIME: Final = 60.0
_EXPIRY_MARGIN: Final = 5.0
_TOKEN_RESPONSE_LIMIT: Final = 1024 * 1024

Scopes = tuple[str, ...]


def repository_scope(repository: str, *actions: str) -> str:
    """The token scope for ``repository``; every request path is built next to one of these, so
    the repository name is checked here (no ``..``, upper case or over-long names in a URL)."""
    validate_repository(repository)
    return f"repository:{repository}:{','.join(actions or ('pull',))}"


CATALOG_SCOPE: Final = "registry:catalog:*"


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float

    def valid(self) -> bool:
        return time.monotonic() < self.expires_at - _EXPIRY_MARGIN


class Authenticator:
    """Holds one registry host's credentials, the kind of challenge it uses, and its tokens."""

    def __init__(
        self, host: str, credentials: Credentials | None, *, allow_insecure: bool = False
    ) -> None:
        self.host = host
        self.credentials = credentials
        self.allow_insecure = allow_insecure
        self._basic = False
        self._bearer: Challenge | None = None
        self._tokens: dict[frozenset[str], _Token] = {}
        self._locks: dict[frozenset[str], asyncio.Lock] = {}

    def authorization(self, scopes: Scopes) -> str | None:
        """The ``Authorization`` value to send for ``scopes`` now, if any."""
        if self._basic and self.credentials is not None:
            return self.credentials.basic_header()
        token = self._tokens.get(frozenset(scopes))
        if token is not None and token.valid():
            return f"Bearer {token.value}"
        return None

    async def prepare(self, http: httpx.AsyncClient, scopes: Scopes) -> None:
        """Fetch a token ahead of the request when the host is known to want one."""
        if self._bearer is None or not scopes:
            return
        key = frozenset(scopes)
        token = self._tokens.get(key)
        if token is None or not token.valid():
            await self._fetch_token(http, self._bearer, scopes)

    async def respond(
        self, http: httpx.AsyncClient, response: httpx.Response, scopes: Scopes
    ) -> bool:
        """Handle a ``401``; True when resending the request may now succeed."""
        challenges = parse_challenges(response.headers.get_list("www-authenticate"))
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None:
            wanted = tuple(dict.fromkeys((*scopes, *bearer.scopes)))
            self._bearer = bearer
            await self._fetch_token(http, bearer, scopes, extra=wanted)
            return True
        if basic is not None:
            if self.credentials is None or self._basic:
                return False
            self._basic = True
            return True
        return False

    async def _fetch_token(
        self,
        http: httpx.AsyncClient,
        challenge: Challenge,
        scopes: Scopes,
        extra: Iterable[str] = (),
    ) -> None:
        key = frozenset(scopes)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.valid() and not extra:
                return
            realm = challenge.realm or ""
            check_url_allowed(realm, allow_insecure=self.allow_insecure)
            params: list[tuple[str, str]] = []
            if challenge.service:
                params.append(("service", challenge.service))
            for scope in dict.fromkeys((*scopes, *extra)):
                params.append(("scope", scope))
            headers = {}
            if self.credentials is not None:
                params.append(("account", self.credentials.username))
                headers["Authorization"] = self.credentials.basic_header()
            try:
                url = append_query(realm, params)
                response, body = await self._get_token(http, url, headers, realm)
            except httpx.InvalidURL as exc:
                raise RegistryError(
                    f"registry {self.host} named an invalid token realm {realm!r}", status=401
                ) from exc
            except httpx.HTTPError as exc:
                raise Unreachable(
                    f"cannot reach the token service {realm} of registry {self.host}: {exc}",
                    hint="check that the registry's auth service is running and reachable",
                ) from exc
            self._tokens[key] = self._parse_token_response(response, body, realm)

    async def _get_token(
        self, http: httpx.AsyncClient, url: httpx.URL, headers: dict[str, str], realm: str
    ) -> tuple[httpx.Response, bytes]:
        """GET the token, its body streamed and refused past ``_TOKEN_RESPONSE_LIMIT``."""

        def too_large(limit: int) -> RegistryError:
            return RegistryError(
                f"token service {realm} answered more than {limit} bytes", status=200
            )

        response = await http.send(http.build_request("GET", url, headers=headers), stream=True)
        try:
            if response.status_code != 200:
                return response, b""  # refused below by its status; the body is not used
            return response, await aread_bounded(response, _TOKEN_RESPONSE_LIMIT, too_large)
        finally:
            await response.aclose()

    def _parse_token_response(self, response: httpx.Response, body: bytes, realm: str) -> _Token:
        if response.status_code in (401, 403):
            raise RegistryError(
                f"token service {realm} refused the credentials for {self.host} "
                f"({response.status_code})",
                status=response.status_code,
                oci_code="UNAUTHORIZED" if response.status_code == 401 else "DENIED",
                hint="check the username and password for this registry in your Docker config "
                "or the credentials you passed",
            )
        if response.status_code != 200:
            raise RegistryError(
                f"token service {realm} answered {response.status_code}",
                status=response.status_code,
            )
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(
                f"token service {realm} answered something that is not JSON", status=200
            ) from exc
        if not isinstance(doc, dict):
            raise RegistryError(f"token service {realm} answered a non-object", status=200)
        value = doc.get("token") or doc.get("access_token")
        if not isinstance(value, str) or not value:
            raise RegistryError(f"token service {realm} answered without a token", status=200)
        lifetime = doc.get("expires_in")
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        return _Token(value, time.monotonic() + float(lifetime))
