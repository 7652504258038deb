"""Running gateways for tests: ``safeguard serve`` with gateway flags in a subprocess on a free
port, in front of the built-in registry or of a real docker-registry, and the users they know.

Not a test module: the gateway's unit and integration tests import it.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from safeguard.gateway.auth import hash_password
from tests.fixtures.builtin import serve_command
from tests.fixtures.distribution import RegistryServer
from tests.fixtures.ports import free_port, wait_for_port
from tests.fixtures.process import stop

USERS: dict[str, tuple[str, list[str]]] = {
    "root": ("root-secret-1", ["admin"]),
    "ci": ("ci-secret-22", ["push"]),
    "viewer": ("viewer-secret-333", ["pull"]),
}


def basic(user: str) -> str:
    password = USERS[user][0]
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def creds(user: str) -> str:
    """``user:password`` as skopeo's ``--creds`` takes it."""
    return f"{user}:{USERS[user][0]}"


def write_users(path: Path, *, anonymous_pull: bool = False) -> Path:
    doc = {
        "anonymousPull": anonymous_pull,
        "users": [
            {"name": name, "passwordHash": hash_password(password), "roles": roles}
            for name, (password, roles) in USERS.items()
        ],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@dataclass
class GatewayServer:
    host: str
    data_dir: Path
    upstream: RegistryServer | None  # None: the built-in registry in the same process
    proc: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def kind(self) -> str:
        return "builtin" if self.upstream is None else "distribution"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    stop(proc)


def start_gateway(
    data_dir: Path,
    upstream: RegistryServer | None,
    *,
    auth_file: Path | None = None,
    policy_file: Path | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    database_url: str | None = None,
    extra_args: list[str] | None = None,
) -> GatewayServer:
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    args: list[str] = []
    if upstream is not None:
        args += ["--upstream", upstream.url]
    if auth_file is not None:
        args += ["--auth", str(auth_file)]
    if policy_file is not None:
        args += ["--policy", str(policy_file)]
    args += extra_args or []
    cmd = serve_command(port, data_dir, database_url) + args
    log_path = data_dir.parent / f"gateway-{port}.log"
    log = log_path.open("ab")
    full_env = {k: v for k, v in os.environ.items() if k != "SAFEGUARD_DATABASE_URL"}
    full_env.update(env or {})
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=full_env)
    log.close()
    server = GatewayServer(f"127.0.0.1:{port}", data_dir, upstream, proc, log_path, args)
    deadline = time.monotonic() + 30
    while True:
        try:
            wait_for_port(port, timeout=0.2)
            return server
        except TimeoutError:
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc)
                raise RuntimeError(f"gateway did not start:\n{server.log()}") from None


@contextmanager
def run_gateway(
    workdir: Path,
    upstream: RegistryServer | None,
    **options: Any,
) -> Iterator[GatewayServer]:
    server = start_gateway(workdir / "data", upstream, **options)
    try:
        yield server
    finally:
        _stop(server.proc)


def kill(server: GatewayServer) -> None:
    """``kill -9``: no shutdown, no last flush."""
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()


def skopeo_available() -> bool:
    return shutil.which("skopeo") is not None


@dataclass
class OwnedRegistry:
    """A docker-registry this test owns: it can be stopped mid-test, and configured beyond
    what ``tests.fixtures.distribution.run_distribution`` offers (notification endpoints)."""

    server: RegistryServer
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        _stop(self.proc)


@contextmanager
def run_owned_registry(
    workdir: Path, extra: dict[str, Any] | None = None
) -> Iterator[OwnedRegistry]:
    """``docker-registry`` with the fixture's settings plus ``extra`` top-level config keys."""
    port = free_port()
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": f"127.0.0.1:{port}"},
        **(extra or {}),
    }
    config_path = workdir / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    log = (workdir / "registry.log").open("wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(config_path)], stdout=log, stderr=log)
    log.close()
    owned = OwnedRegistry(RegistryServer("distribution", f"127.0.0.1:{port}", storage), proc)
    try:
        wait_for_port(port)
        yield owned
    finally:
        owned.stop()


# -- policies -----------------------------------------------------------------------------------

KEY_PASSWORD = "gateway test key"


@dataclass(frozen=True)
class KeyFiles:
    team_a: Path  # cosign.key of the team-a-release identity
    team_b: Path  # cosign.key of the team-b-release identity (not allowed in team-a repos)


def make_keys(directory: Path) -> KeyFiles:
    from safeguard.keys.cosign_keys import generate_key_pair

    directory.mkdir(parents=True, exist_ok=True)
    a, _ = generate_key_pair(directory / "team-a", KEY_PASSWORD)
    b, _ = generate_key_pair(directory / "team-b", KEY_PASSWORD)
    return KeyFiles(a, b)


DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "match": "team-a/reject/**",
        "unsignedPush": "reject",
        "signers": [{"identity": "team-a-release"}],
        "immutableTags": ["v*"],
    },
    {
        "match": "team-a/grace/**",
        "unsignedPush": "grace",
        "graceSeconds": 30,
        "signers": [{"identity": "team-a-release"}],
        "quarantine": {"namespace": "quarantine", "deprecationDays": 30},
    },
    {
        "match": "team-a/midgrace/**",
        "unsignedPush": "grace",
        "graceSeconds": 4,
        "signers": [{"identity": "team-a-release"}],
    },
    {
        "match": "team-a/fastgrace/**",
        "unsignedPush": "grace",
        "graceSeconds": 1,
        "signers": [{"identity": "team-a-release"}],
        "quarantine": {"namespace": "held", "deprecationDays": 7},
    },
    {
        "match": "team-a/warn/**",
        "unsignedPush": "warn",
        "signers": [{"identity": "team-a-release"}],
    },
    {"match": "team-a/off/**", "unsignedPush": "off", "signers": [{"identity": "team-a-release"}]},
    {"match": "team-b/**", "unsignedPush": "reject", "signers": [{"identity": "team-b-release"}]},
]


def write_policy(
    directory: Path, keys: KeyFiles, rules: list[dict[str, Any]] | None = None
) -> Path:
    """A safeguard.yaml with two key-signing identities and gateway rules."""
    doc = {
        "apiVersion": "safeguard.dev/v1",
        "kind": "Policy",
        "trustRoots": {
            "internal": {
                "keys": [
                    {"name": "team-a-key", "ref": str(keys.team_a)},
                    {"name": "team-b-key", "ref": str(keys.team_b)},
                ]
            }
        },
        "identities": [
            {
                "name": f"team-{x}-release",
                "trustRoot": "internal",
                "key": f"team-{x}-key",
                "oidc": {"issuer": "https://token.example.test", "repository": f"org/team-{x}"},
                # no host: a path in whatever registry the gateway fronts (a glob naming
                # another registry's host would not count here)
                "mayPublish": [f"team-{x}/**"],
            }
            for x in ("a", "b")
        ],
        "registries": rules if rules is not None else DEFAULT_RULES,
    }
    path = directory / "safeguard.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def auth_file_for(directory: Path, host: str, user: str = "ci") -> Path:
    """A containers-auth.json with ``user``'s gateway credentials (for REGISTRY_AUTH_FILE)."""
    import json

    path = directory / f"auth-{user}.json"
    token = base64.b64encode(creds(user).encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path
