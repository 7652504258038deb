"""Who is asking the gateway, and what they may do: users and roles, HTTP Basic, bearer tokens.

The users file (``safeguard serve --auth FILE``, YAML)::

    anonymousPull: true            # pulls without credentials (default false)
    tokenSecretFile: token.secret  # HMAC key for issued tokens; shared by every gateway node
    users:
      - name: ci-team-a
        passwordHash: "scrypt$16384$8$1$<salt>$<hash>"   # safeguard gateway hash-password
        roles: [push]
      - name: alice
        passwordHash: "..."
        roles: [admin]

Roles: ``pull`` (read), ``push`` (read, write and delete, within what policy allows), ``admin``
(everything, plus the gateway's admin API). Clients authenticate with HTTP Basic on each request,
or fetch a bearer token from ``/token`` the way Docker's token flow works (distribution's "Token
Authentication Specification": ``GET /token?service=...&scope=repository:NAME:pull,push`` with
Basic credentials; the answer ``{"token", "access_token", "expires_in", "issued_at"}``), which is
what ``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` on a 401 asks them to do.
Tokens are HS256 JWTs (RFC 7519) carrying distribution's ``access`` claim; they grant at most
what the user's roles allow. Password hashes are scrypt (RFC 7914); a verified password is
remembered for a few minutes by its SHA-256, so Basic clients do not pay scrypt per request.

Without a users file the gateway does no authentication: every client is ``anonymous`` with every
right, except the admin API, which then answers only loopback clients.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jwt
import yaml

from safeguard.core.errors import InvalidInput

ROLES: Final = ("pull", "push", "admin")
ACTIONS_BY_ROLE: Final[dict[str, frozenset[str]]] = {
    "pull": frozenset({"pull"}),
    "push": frozenset({"pull", "push", "delete"}),
    "admin": frozenset({"pull", "push", "delete", "*"}),
}
SERVICE: Final = "safeguard-gateway"
TOKEN_LIFETIME: Final = 300
ANONYMOUS: Final = "anonymous"
_SCRYPT: Final = (16384, 8, 1)
_CACHE_SECONDS: Final = 300.0
_MAX_CACHE: Final = 10_000


class AuthConfigInvalid(InvalidInput):
    code = "GATEWAY_AUTH_INVALID"


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$<salt b64>$<hash b64>`` for the users file."""
    n, r, p = _SCRYPT
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024)
    return "$".join(
        ("scrypt", str(n), str(r), str(p), base64.b64encode(salt).decode(), _b64(digest))
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def check_password(password: str, stored: str) -> bool:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
        if n > 1 << 20 or r > 32 or p > 16:
            return False
        actual = hashlib.scrypt(
            password.encode(),
            salt=salt,
            n=n,
            r=r,
            p=p,
            maxmem=256 * 1024 * 1024,
            dklen=len(expected),
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: str = field(repr=False)
    roles: frozenset[str]

    @property
    def actions(self) -> frozenset[str]:
        out: set[str] = set()
        for role in self.roles:
            out |= ACTIONS_BY_ROLE[role]
        return frozenset(out)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated (or anonymous) caller and what it may do.

    ``grants`` is ``None`` for Basic/anonymous callers (their roles decide everywhere), or the
    token's ``access`` claim: repository name to actions."""

    name: str
    actions: frozenset[str]
    grants: dict[str, frozenset[str]] | None = None
    authenticated: bool = False

    @property
    def is_admin(self) -> bool:
        return "*" in self.actions

    def may(self, action: str, repository: str | None) -> bool:
        if not (action in self.actions or "*" in self.actions):
            return False
        if self.grants is None:
            return True
        if repository is None:
            return action == "pull"  # /v2/ and the catalog need a token, any token
        granted = self.grants.get(repository, frozenset())
        return action in granted or "*" in granted


OPEN: Final = Principal(ANONYMOUS, ACTIONS_BY_ROLE["admin"])


@dataclass
class AuthConfig:
    users: dict[str, User]
    anonymous_pull: bool
    secret: bytes = field(repr=False)
    enabled: bool = True
    _verified: dict[str, tuple[float, str]] = field(default_factory=dict, repr=False)

    @classmethod
    def disabled(cls) -> AuthConfig:
        return cls({}, True, secrets.token_bytes(32), enabled=False)

    @classmethod
    def load(cls, path: Path, data_dir: Path) -> AuthConfig:
        try:
            doc = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise AuthConfigInvalid(f"cannot read the users file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise AuthConfigInvalid(f"users file {path} is not valid YAML: {exc}") from None
        return cls.from_dict(doc or {}, path, data_dir)

    @classmethod
    def from_dict(cls, doc: Any, where: Path | str, data_dir: Path) -> AuthConfig:
        if not isinstance(doc, dict):
            raise AuthConfigInvalid(f"users file {where} must be a mapping")
        users: dict[str, User] = {}
        for i, entry in enumerate(doc.get("users") or []):
            if not isinstance(entry, dict):
                raise AuthConfigInvalid(f"users[{i}] in {where} must be a mapping")
            name, hashed, roles = entry.get("name"), entry.get("passwordHash"), entry.get("roles")
            if not isinstance(name, str) or not name or name == ANONYMOUS:
                raise AuthConfigInvalid(f"users[{i}] in {where} needs a name (not 'anonymous')")
            if not isinstance(hashed, str) or not hashed.startswith("scrypt$"):
                raise AuthConfigInvalid(
                    f"user {name!r} in {where} needs a passwordHash",
                    hint="make one with: safeguard gateway hash-password",
                )
            if not isinstance(roles, list) or not roles or not set(roles) <= set(ROLES):
                raise AuthConfigInvalid(
                    f"user {name!r} in {where} needs roles from {', '.join(ROLES)}"
                )
            if name in users:
                raise AuthConfigInvalid(f"user {name!r} appears twice in {where}")
            users[name] = User(name, hashed, frozenset(roles))
        secret_file = doc.get("tokenSecretFile")
        secret_path = Path(secret_file) if secret_file else data_dir / "gateway-token.secret"
        if secret_file and not secret_path.is_absolute() and isinstance(where, Path):
            secret_path = where.parent / secret_path
        return cls(users, bool(doc.get("anonymousPull", False)), _load_secret(secret_path))

    # -- credentials ------------------------------------------------------------------------

    def anonymous(self) -> Principal:
        if not self.enabled:
            return OPEN
        return Principal(ANONYMOUS, frozenset({"pull"}) if self.anonymous_pull else frozenset())

    def basic(self, header_value: str) -> Principal | None:
        """The user a ``Basic`` credential names, or ``None`` when it is wrong."""
        try:
            decoded = base64.b64decode(header_value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, sep, password = decoded.partition(":")
        user = self.users.get(name)
        if not sep or user is None:
            return None
        key = hashlib.sha256(decoded.encode()).hexdigest()
        now = time.monotonic()
        cached = self._verified.get(name)
        if cached is None or cached[1] != key or cached[0] < now:
            if not check_password(password, user.password_hash):
                return None
            if len(self._verified) >= _MAX_CACHE:
                self._verified.clear()
            self._verified[name] = (now + _CACHE_SECONDS, key)
        return Principal(user.name, user.actions, None, True)

    def issue(self, principal: Principal, scopes: list[str], service: str) -> dict[str, Any]:
        """A token for ``scopes`` narrowed to what ``principal`` may do."""
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3 or parts[0] != "repository":
                continue
            name, wanted = ":".join(parts[1:-1]), parts[-1].split(",")
            allowed = [a for a in wanted if a in principal.actions or "*" in principal.actions]
            access.append({"type": "repository", "name": name, "actions": allowed})
        now = int(time.time())
        claims = {
            "iss": SERVICE,
            "sub": principal.name,
            "aud": service,
            "iat": now,
            "nbf": now - 5,
            "exp": now + TOKEN_LIFETIME,
            "jti": secrets.token_hex(8),
            "access": access,
            "auth": principal.authenticated,
            "roles": sorted(principal.actions),
        }
        token = jwt.encode(claims, self.secret, algorithm="HS256")
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return {
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_LIFETIME,
            "issued_at": issued,
        }

    def bearer(self, token: str) -> Principal | None:
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                audience=SERVICE,
                issuer=SERVICE,
                options={"require": ["exp", "iat", "sub", "aud"]},
            )
        except jwt.PyJWTError:
            return None
        grants: dict[str, frozenset[str]] = {}
        for item in claims.get("access") or []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                actions = item.get("actions") or []
                grants[item["name"]] = grants.get(item["name"], frozenset()) | frozenset(
                    a for a in actions if isinstance(a, str)
                )
        name = str(claims["sub"])
        user = self.users.get(name)
        if user is not None:
            actions = user.actions  # roles as they are now, not when the token was issued
        elif name == ANONYMOUS:
            actions = self.anonymous().actions
        else:
            return None
        return Principal(name, actions, grants, bool(claims.get("auth")))

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The caller for an ``Authorization`` header; ``None`` when credentials are wrong."""
        if not self.enabled:
            return OPEN
        if not authorization:
            return self.anonymous()
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            return self.basic(value)
        if scheme == "bearer":
            return self.bearer(value.strip())
        return None


def _load_secret(path: Path) -> bytes:
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = secrets.token_hex(32).encode()
        try:
            with path.open("xb") as handle:
                path.chmod(0o600)
                handle.write(data)
        except FileExistsError:
            data = path.read_bytes().strip()
    except OSError as exc:
        raise AuthConfigInvalid(f"cannot read the token secret {path}: {exc.strerror}") from None
    if len(data) < 32:
        raise AuthConfigInvalid(f"token secret {path} is shorter than 32 bytes")
    return data


def challenge(realm: str, scope: str | None, error: str | None = None) -> bytes:
    """A ``WWW-Authenticate: Bearer`` value pointing clients at our token endpoint."""
    value = f'Bearer realm="{realm}",service="{SERVICE}"'
    if scope:
        value += f',scope="{scope}"'
    if error:
        value += f',error="{error}"'
    return value.encode()
