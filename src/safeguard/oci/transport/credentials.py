"""Registry credentials from the files Docker, Podman and skopeo keep them in.

Looked up in order, first match wins:

1. ``$REGISTRY_AUTH_FILE`` (containers-auth.json(5), what skopeo and podman read);
2. ``$XDG_RUNTIME_DIR/containers/auth.json`` and ``~/.config/containers/auth.json``;
3. ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` (Docker's CLI config).

Every file has the same shape: ``{"auths": {"<host>": {"auth": base64("user:password")}}}``.
Keys may be a bare ``host[:port]`` or a URL (``https://host/v1/``); Docker Hub is stored as
``https://index.docker.io/v1/``. Credential helpers (``credsStore``, ``credHelpers``) and
``identitytoken`` refresh tokens are not supported: such entries are skipped.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from safeguard.core.errors import InvalidInput
from safeguard.core.reference import DOCKER_HUB, DOCKER_HUB_API

_HUB_KEYS: Final = ("https://index.docker.io/v1/", "index.docker.io", DOCKER_HUB, DOCKER_HUB_API)


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def auth_file_paths(env: Mapping[str, str] | None = None, home: Path | None = None) -> list[Path]:
    """The files searched for credentials, in order."""
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    paths: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        paths.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    paths.append(home / ".config" / "containers" / "auth.json")
    docker_dir = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home / ".docker"
    paths.append(docker_dir / "config.json")
    return paths


def lookup_credentials(
    host: str, env: Mapping[str, str] | None = None, home: Path | None = None
) -> Credentials | None:
    """Credentials for registry ``host`` (``host[:port]``), or ``None`` to go anonymous."""
    for path in auth_file_paths(env, home):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise InvalidInput(f"cannot read credentials file {path}: {exc.strerror}") from exc
        found = credentials_from_auth_file(data, host, source=str(path))
        if found is not None:
            return found
    return None


def credentials_from_auth_file(data: bytes, host: str, *, source: str) -> Credentials | None:
    """Credentials for ``host`` in the bytes of one auth file; malformed files are errors."""
    try:
        doc = json.loads(data) if data.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(
            f"credentials file {source} is not valid JSON",
            hint='fix or remove the file; it should look like {"auths": {...}}',
        ) from exc
    if not isinstance(doc, dict):
        raise InvalidInput(f"credentials file {source} is not a JSON object")
    auths = doc.get("auths")
    if auths is None:
        auths = {}
    if not isinstance(auths, dict):
        raise InvalidInput(f"credentials file {source}: 'auths' is not an object")
    entry = _find_entry(auths, host)
    if entry is None:
        return None
    return _decode_entry(entry, host, source)


def _normalise_key(key: str) -> str:
    k = key.strip()
    for prefix in ("https://", "http://"):
        if k.startswith(prefix):
            k = k[len(prefix) :]
    return k.split("/", 1)[0].lower()


def _find_entry(auths: dict[str, Any], host: str) -> Any:
    wanted = host.lower()
    candidates = {wanted}
    if wanted in (DOCKER_HUB, DOCKER_HUB_API, "index.docker.io"):
        candidates |= {_normalise_key(k) for k in _HUB_KEYS}
    for key in auths:  # exact key first
        if isinstance(key, str) and key.lower() == wanted:
            return auths[key]
    for key, entry in auths.items():
        if isinstance(key, str) and _normalise_key(key) in candidates:
            return entry
    return None


def _decode_entry(entry: Any, host: str, source: str) -> Credentials | None:
    if not isinstance(entry, dict):
        raise InvalidInput(f"credentials file {source}: entry for {host} is not an object")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidInput(
                f"credentials file {source}: 'auth' for {host} is not base64 of user:password"
            ) from exc
        user, sep, password = decoded.partition(":")
        if not sep or not user:
            raise InvalidInput(
                f"credentials file {source}: 'auth' for {host} is not base64 of user:password"
            )
        return Credentials(user, password)
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and name and isinstance(secret, str):
        return Credentials(name, secret)
    return None
