"""JSON Web Key Sets: parsing issuer keys and fetching them, from discovery, a URL or a file.

Parsing follows RFC 7517 (JWK §4, JWK Set §5) with the key types RFC 7518 §6 (RSA, EC) and
RFC 8037 (OKP) define, restricted to what an ID-token verifier needs: RSA (at least 2048 bits),
EC P-256 and P-384, and Ed25519. Keys marked for another use (``use`` other than ``sig``,
``key_ops`` without ``verify``), other key types (``oct``, P-521, X25519...) and algorithms
outside the verifier's allow-list are skipped and reported, so that one exotic key does not make
an issuer's whole set unusable. A set that publishes private key members, repeats a ``kid`` or is
not a JSON object with a ``keys`` array is refused.

Sources, for the three ways a site learns an issuer's keys:

* ``DiscoveredJWKS``: ``<issuer>/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0
  §4; a trailing ``/`` of the issuer is removed first), whose ``issuer`` must equal the configured
  issuer exactly (§4.3) and whose ``jwks_uri`` is then fetched;
* ``URLJWKS``: a configured JWKS URL;
* ``FileJWKS``: a JWKS file, for air-gapped sites that copy the issuer's keys in.

Each caches the set for ``ttl`` seconds. A token whose ``kid`` is not in the cached set (the
issuer rotated its keys) triggers one refetch, but refetches are rate-limited to one per
``min_refetch_interval`` seconds, so a stream of tokens with made-up ``kid`` values cannot turn
the verifier into a load generator against the issuer; past that, the token is refused
(``OIDC_KEY_UNKNOWN``). If a scheduled refresh fails, the previous set is kept for up to
``stale_if_error`` seconds past its expiry (the issuer's keys rarely change, and its outage
should not stop signing at once).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError

from safeguard.identity.errors import (
    OIDCDiscoveryInvalid,
    OIDCJWKSInvalid,
    OIDCJWKSUnreachable,
    OIDCKeyUnknown,
    OIDCURLRefused,
)
from safeguard.identity.http import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, check_url, get_json

log = logging.getLogger(__name__)

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

MAX_KEYS: Final = 64
MIN_RSA_BITS: Final = 2048
DEFAULT_TTL: Final = 300.0
DEFAULT_MIN_REFETCH_INTERVAL: Final = 30.0
DEFAULT_STALE_IF_ERROR: Final = 3600.0
DEFAULT_ERROR_BACKOFF: Final = 5.0
DISCOVERY_PATH: Final = "/.well-known/openid-configuration"

# The verifier's algorithm allow-list (tokens.ALLOWED_ALGORITHMS mirrors it), by key type.
RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS: Final = {"P-256": "ES256", "P-384": "ES384"}
OKP_ALGORITHMS: Final = {"Ed25519": "EdDSA"}
_PRIVATE_MEMBERS: Final = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


@dataclass(frozen=True, slots=True)
class JWK:
    """One usable verification key from a set.

    ``algorithms`` are the JWS ``alg`` values this key may verify: one value when the JWK names
    its ``alg`` or when the key type fixes it (EC curves, Ed25519), every RSA algorithm otherwise.
    """

    kid: str | None
    kty: str
    public_key: PublicKey
    algorithms: frozenset[str]
    crv: str | None = None

    def describe(self) -> str:
        if isinstance(self.public_key, rsa.RSAPublicKey):
            kind = f"RSA-{self.public_key.key_size}"
        else:
            kind = self.crv or self.kty
        return f"{self.kid or '(no kid)'} ({kind})"


@dataclass(frozen=True, slots=True)
class JWKSet:
    """The usable keys of a JWKS, by ``kid``, and the keys skipped with the reason why."""

    keys: tuple[JWK, ...]
    skipped: tuple[tuple[str | None, str], ...] = ()
    _by_kid: Mapping[str, JWK] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_kid", {k.kid: k for k in self.keys if k.kid is not None})

    def get(self, kid: str) -> JWK | None:
        return self._by_kid.get(kid)

    def skipped_reason(self, kid: str) -> str | None:
        for skipped_kid, reason in self.skipped:
            if skipped_kid == kid:
                return reason
        return None

    @property
    def kids(self) -> list[str]:
        return [k.kid for k in self.keys if k.kid is not None]

    @classmethod
    def parse(cls, data: bytes | str | Mapping[str, Any], *, source: str = "JWKS") -> JWKSet:
        """Parse a JWKS document (bytes, text or an already-decoded object)."""
        return parse_jwks(data, source=source)


def _require_member(jwk: Mapping[str, Any], name: str) -> None:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise _SkipKey(f"member {name!r} is missing or not a string")


class _SkipKey(Exception):
    """A key this verifier cannot or must not use; the set stays usable without it."""


def _parse_key(jwk: Mapping[str, Any], source: str) -> JWK:
    kid_value = jwk.get("kid")
    if kid_value is not None and not isinstance(kid_value, str):
        raise OIDCJWKSInvalid(f"{source}: a key has a non-string 'kid'")
    kid: str | None = kid_value
    kty = jwk.get("kty")
    if not isinstance(kty, str):
        raise OIDCJWKSInvalid(f"{source}: key {kid!r} has no 'kty' string (RFC 7517 §4.1)")
    present_private = [m for m in _PRIVATE_MEMBERS if m in jwk]
    if present_private:
        raise OIDCJWKSInvalid(
            f"{source}: key {kid!r} carries private or symmetric key members "
            f"{present_private}; a JWKS published for verification must hold public keys only",
            hint="publish the public half only (RFC 7517 §5); rotate this key, it was exposed",
        )
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise _SkipKey(f"'use' is {use!r}, not 'sig'")
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise _SkipKey("'key_ops' does not include 'verify'")
    alg = jwk.get("alg")
    if alg is not None and not isinstance(alg, str):
        raise _SkipKey("'alg' is not a string")

    public_key: PublicKey
    crv: str | None = None
    try:
        if kty == "RSA":
            _require_member(jwk, "n")
            _require_member(jwk, "e")
            loaded = RSAAlgorithm.from_jwk(dict(jwk))
            if not isinstance(loaded, rsa.RSAPublicKey):
                raise _SkipKey("not an RSA public key")
            if loaded.key_size < MIN_RSA_BITS:
                raise _SkipKey(f"RSA key of {loaded.key_size} bits, under {MIN_RSA_BITS}")
            public_key = loaded
            allowed = frozenset(RSA_ALGORITHMS)
        elif kty == "EC":
            crv = jwk.get("crv") if isinstance(jwk.get("crv"), str) else None
            if crv not in EC_ALGORITHMS:
                raise _SkipKey(f"EC curve {jwk.get('crv')!r} is not P-256 or P-384")
            _require_member(jwk, "x")
            _require_member(jwk, "y")
            loaded_ec = ECAlgorithm.from_jwk(dict(jwk))
            if not isinstance(loaded_ec, ec.EllipticCurvePublicKey):
                raise _SkipKey("not an EC public key")
            public_key = loaded_ec
            allowed = frozenset({EC_ALGORITHMS[crv]})
        elif kty == "OKP":
            crv = jwk.get("crv") if isinstance(jwk.get("crv"), str) else None
            if crv not in OKP_ALGORITHMS:
                raise _SkipKey(f"OKP curve {jwk.get('crv')!r} is not Ed25519")
            _require_member(jwk, "x")
            loaded_okp = OKPAlgorithm.from_jwk(dict(jwk))
            if not isinstance(loaded_okp, ed25519.Ed25519PublicKey):
                raise _SkipKey("not an Ed25519 public key")
            public_key = loaded_okp
            allowed = frozenset({OKP_ALGORITHMS[crv]})
        else:
            raise _SkipKey(f"key type {kty!r} is not used for ID-token signatures")
    except (InvalidKeyError, ValueError, TypeError, KeyError) as exc:
        raise _SkipKey(f"the key material cannot be read: {exc}") from None
    if alg is not None:
        if alg not in allowed:
            raise _SkipKey(f"'alg' {alg!r} is not an allowed algorithm for a {kty} key")
        allowed = frozenset({alg})
    return JWK(kid=kid, kty=kty, public_key=public_key, algorithms=allowed, crv=crv)


def parse_jwks(data: bytes | str | Mapping[str, Any], *, source: str = "JWKS") -> JWKSet:
    """Parse a JWKS (RFC 7517 §5) into the keys usable for ID-token verification."""
    doc: Any = data
    if isinstance(data, bytes | str):
        if len(data) > DEFAULT_MAX_BYTES:
            raise OIDCJWKSInvalid(f"{source} is over the {DEFAULT_MAX_BYTES}-byte limit")
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            raise OIDCJWKSInvalid(f"{source} is not JSON", hint="give a JWKS document") from None
    if not isinstance(doc, Mapping):
        raise OIDCJWKSInvalid(f"{source} is not a JSON object", hint='expected {"keys": [...]}')
    raw_keys = doc.get("keys")
    if not isinstance(raw_keys, list):
        raise OIDCJWKSInvalid(f"{source} has no 'keys' array", hint='expected {"keys": [...]}')
    if len(raw_keys) > MAX_KEYS:
        raise OIDCJWKSInvalid(f"{source} has {len(raw_keys)} keys, over the limit of {MAX_KEYS}")
    keys: list[JWK] = []
    skipped: list[tuple[str | None, str]] = []
    seen: set[str] = set()
    for raw in raw_keys:
        if not isinstance(raw, Mapping):
            raise OIDCJWKSInvalid(f"{source} has a key that is not a JSON object")
        kid = raw.get("kid") if isinstance(raw.get("kid"), str) else None
        if kid is not None:
            if kid in seen:
                raise OIDCJWKSInvalid(
                    f"{source} has two keys with kid {kid!r}",
                    hint="a kid must name one key (RFC 7517 §4.5)",
                )
            seen.add(kid)
        try:
            keys.append(_parse_key(raw, source))
        except _SkipKey as skip:
            skipped.append((kid, str(skip)))
    return JWKSet(keys=tuple(keys), skipped=tuple(skipped))


@runtime_checkable
class JWKSSource(Protocol):
    """Where an issuer's keys come from; ``key`` refetches (rate-limited) on an unknown kid."""

    async def keys(self) -> JWKSet: ...

    async def key(self, kid: str) -> JWK: ...

    def describe(self) -> str: ...


class StaticJWKS:
    """A fixed key set: what a test or an already-loaded configuration hands over."""

    def __init__(self, jwks: JWKSet, *, description: str = "the configured key set") -> None:
        self._set = jwks
        self._description = description

    async def keys(self) -> JWKSet:
        return self._set

    async def key(self, kid: str) -> JWK:
        return key_from_set(self._set, kid, self._description)

    def describe(self) -> str:
        return self._description


def key_from_set(jwks: JWKSet, kid: str, description: str, *, note: str = "") -> JWK:
    found = jwks.get(kid)
    if found is not None:
        return found
    reason = jwks.skipped_reason(kid)
    if reason is not None:
        raise OIDCKeyUnknown(
            f"the token's key {kid!r} is in {description} but cannot be used: {reason}",
            hint="the issuer signs with a key type or algorithm Safeguard does not accept",
        )
    raise OIDCKeyUnknown(
        f"the token's key {kid!r} is not in {description} "
        f"(known: {', '.join(jwks.kids) or 'none'}){note}",
        hint="use a fresh token from the configured issuer; if the issuer rotated its keys, "
        "update the key set (for a JWKS file, copy the issuer's current JWKS in)",
    )


class CachingJWKS:
    """Shared caching and rate-limited refetching; subclasses implement ``_load``."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        min_refetch_interval: float = DEFAULT_MIN_REFETCH_INTERVAL,
        stale_if_error: float = DEFAULT_STALE_IF_ERROR,
        error_backoff: float = DEFAULT_ERROR_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.min_refetch_interval = min_refetch_interval
        self.stale_if_error = stale_if_error
        self.error_backoff = error_backoff
        self._last_error: Exception | None = None
        self._clock = clock
        self._set: JWKSet | None = None
        self._loaded_at = 0.0  # when the cached set was last loaded successfully
        self._attempted_at = 0.0  # when a load was last attempted
        self._lock = asyncio.Lock()
        self.fetches = 0  # loads attempted, for metrics and tests

    async def _load(self) -> JWKSet:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    async def _refresh(self, now: float, *, for_kid: bool) -> None:
        self._attempted_at = now
        self.fetches += 1
        try:
            new = await self._load()
        except Exception as exc:
            self._last_error = exc
            usable = (
                not for_kid
                and self._set is not None
                and now - self._loaded_at < self.ttl + self.stale_if_error
            )
            if usable:
                log.warning(
                    "keeping the cached key set of %s after a failed refresh: %s",
                    self.describe(),
                    exc,
                )
                return
            raise
        self._set = new
        self._loaded_at = now
        self._last_error = None

    async def keys(self) -> JWKSet:
        async with self._lock:
            now = self._clock()
            since = now - self._attempted_at
            if self._set is None:
                if self._last_error is not None and since < self.error_backoff:
                    raise self._last_error
                await self._refresh(now, for_kid=False)
            elif now - self._loaded_at >= self.ttl:
                if since >= self.min_refetch_interval:
                    await self._refresh(now, for_kid=False)
                elif (
                    self._last_error is not None
                    and now - self._loaded_at >= self.ttl + self.stale_if_error
                ):
                    raise self._last_error
            assert self._set is not None
            return self._set

    async def key(self, kid: str) -> JWK:
        jwks = await self.keys()
        found = jwks.get(kid)
        if found is not None:
            return found
        async with self._lock:
            now = self._clock()
            assert self._set is not None
            found = self._set.get(kid)
            if found is not None:
                return found
            since = now - self._attempted_at
            if since >= self.min_refetch_interval:
                await self._refresh(now, for_kid=True)
                return key_from_set(self._set, kid, self.describe(), note=" (just refetched)")
            return key_from_set(
                self._set,
                kid,
                self.describe(),
                note=f" (fetched {since:.0f}s ago; refetching at most every "
                f"{self.min_refetch_interval:.0f}s)",
            )


def _client(client: httpx.AsyncClient | None, timeout: float) -> httpx.AsyncClient:
    return client if client is not None else httpx.AsyncClient(timeout=timeout)


class URLJWKS(CachingJWKS):
    """A JWKS fetched from a configured https URL."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        **cache: Any,
    ) -> None:
        super().__init__(**cache)
        self.url = check_url(url, what="JWKS")
        self._http = client
        self._timeout = timeout
        self._max_bytes = max_bytes

    def describe(self) -> str:
        return f"the JWKS at {self.url}"

    async def _fetch(self, url: str, what: str, invalid: type[OIDCJWKSInvalid]) -> Any:
        client = _client(self._http, self._timeout)
        try:
            _, doc = await get_json(
                client,
                url,
                what=what,
                headers={"Accept": "application/json"},
                max_bytes=self._max_bytes,
                invalid=invalid,
                unreachable=OIDCJWKSUnreachable,
            )
        finally:
            if self._http is None:
                await client.aclose()
        return doc

    async def _load(self) -> JWKSet:
        doc = await self._fetch(self.url, "JWKS", OIDCJWKSInvalid)
        return parse_jwks(doc, source=self.describe())


def check_issuer(issuer: str) -> str:
    """An issuer identifier is an https URL without query or fragment (OIDC Discovery 1.0 §2)."""
    check_url(issuer, what="issuer")
    if urlsplit(issuer).query:
        raise OIDCURLRefused(f"the issuer {issuer!r} must not have a query string")
    return issuer


def discovery_url(issuer: str) -> str:
    """``<issuer without trailing slash>/.well-known/openid-configuration`` (Discovery §4)."""
    return check_issuer(issuer).rstrip("/") + DISCOVERY_PATH


class DiscoveredJWKS(URLJWKS):
    """The issuer's JWKS, found through its OpenID Provider configuration document."""

    def __init__(self, issuer: str, **kwargs: Any) -> None:
        self.issuer = check_issuer(issuer)
        super().__init__(discovery_url(issuer), **kwargs)
        self.jwks_uri: str | None = None

    def describe(self) -> str:
        where = f" ({self.jwks_uri})" if self.jwks_uri else ""
        return f"the JWKS of issuer {self.issuer}{where}"

    async def _load(self) -> JWKSet:
        doc = await self._fetch(self.url, "OpenID configuration", OIDCDiscoveryInvalid)
        if not isinstance(doc, Mapping):
            raise OIDCDiscoveryInvalid(f"the OpenID configuration at {self.url} is not an object")
        announced = doc.get("issuer")
        if announced != self.issuer:
            raise OIDCDiscoveryInvalid(
                f"the OpenID configuration at {self.url} names issuer {announced!r}, "
                f"not {self.issuer!r}",
                hint="the configured issuer must be exactly the issuer's own identifier "
                "(OIDC Discovery 1.0 §4.3), including scheme and any path",
            )
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise OIDCDiscoveryInvalid(f"the OpenID configuration at {self.url} has no jwks_uri")
        check_url(jwks_uri, what="jwks_uri")
        self.jwks_uri = jwks_uri
        jwks_doc = await self._fetch(jwks_uri, "JWKS", OIDCJWKSInvalid)
        return parse_jwks(jwks_doc, source=self.describe())


class FileJWKS(CachingJWKS):
    """A JWKS file, reread after ``ttl`` and (rate-limited) when a token names an unknown kid."""

    def __init__(self, path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, **cache: Any):
        cache.setdefault("ttl", 60.0)
        super().__init__(**cache)
        self.path = Path(path)
        self._max_bytes = max_bytes

    def describe(self) -> str:
        return f"the JWKS file {self.path}"

    async def _load(self) -> JWKSet:
        try:
            with self.path.open("rb") as fh:
                data = fh.read(self._max_bytes + 1)
        except OSError as exc:
            raise OIDCJWKSInvalid(
                f"cannot read {self.describe()}: {exc.strerror or exc}",
                hint="check the path of the identity's jwks setting",
            ) from None
        if len(data) > self._max_bytes:
            raise OIDCJWKSInvalid(f"{self.describe()} is over the {self._max_bytes}-byte limit")
        return parse_jwks(data, source=self.describe())


def jwks_source(
    issuer: str,
    jwks: str | None = None,
    *,
    base_dir: Path | None = None,
    client: httpx.AsyncClient | None = None,
    **cache: Any,
) -> JWKSSource:
    """The key source an identity's ``jwks`` setting names: absent → discovery from the issuer;
    an ``http(s)://`` value → that URL; anything else → a file (relative to ``base_dir``)."""
    if jwks is None or jwks == "":
        return DiscoveredJWKS(issuer, client=client, **cache)
    if "://" in jwks:
        return URLJWKS(jwks, client=client, **cache)
    path = Path(jwks)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return FileJWKS(path, **cache)
