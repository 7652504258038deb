"""Shared set-up of the signing tests: a real SoftHSM2 with the identities' keys, a policy that
names them and the real test OIDC issuer, and a signing service over a real store and log.

``signing_hsm(root)`` makes the token ``sgsign`` (keys ``team-a``, ``team-b``, ``gitlab``,
``spare``, P-256) and the release engineer's token ``jdoe-token`` (key ``release``), with the
user PIN in a file for ``pin-source``. ``policy_text`` writes the policy; ``build_service`` wires
``SigningService`` to a SQLite store, the log service object and the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safeguard.policy import PolicyStore
from safeguard.signing.audit import AuditLog
from safeguard.signing.custody import KeyCustody
from safeguard.signing.material import InProcessLog
from safeguard.signing.policyview import PolicySource
from safeguard.signing.ratelimit import RateLimiter
from safeguard.signing.service import SigningService
from safeguard.store import Database, default_database_url, open_database
from safeguard.tlog.logkey import load_or_create
from safeguard.tlog.service import LogConfig, TransparencyLog
from tests.fixtures import softhsm

TOKEN = "sgsign"
PIN = "4321"
RELEASE_TOKEN = "jdoe-token"
RELEASE_PIN = "8642"
REGISTRY = "registry.internal"
KEYS = {"team-a": "01", "team-b": "02", "gitlab": "03", "spare": "04"}


@dataclass
class SigningHSM:
    hsm: softhsm.SoftHSM
    pin_file: Path

    def key_ref(self, label: str) -> str:
        return (
            f"pkcs11:token={TOKEN};object={label}?module-path={softhsm.MODULE}"
            f"&pin-source=file:{self.pin_file}"
        )

    def token_uri(self) -> str:
        return f"pkcs11:token={TOKEN}?module-path={softhsm.MODULE}&pin-source=file:{self.pin_file}"

    def release_uri(self) -> str:
        return f"pkcs11:token={RELEASE_TOKEN};object=release?module-path={softhsm.MODULE}"

    @property
    def conf(self) -> Path:
        return self.hsm.conf


@contextmanager
def signing_hsm(root: Path) -> Iterator[SigningHSM]:
    """A SoftHSM2 with the tokens and keys the module doc lists, activated in this process."""
    with softhsm.run_softhsm(root) as hsm:
        hsm.init_token(TOKEN, PIN)
        for label, key_id in KEYS.items():
            hsm.generate_key(TOKEN, label, key_id, "EC:prime256v1")
        hsm.init_token(RELEASE_TOKEN, RELEASE_PIN)
        hsm.generate_key(RELEASE_TOKEN, "release", "10", "EC:prime256v1")
        pin_file = root / "pin"
        pin_file.write_text(PIN + "\n")
        pin_file.chmod(0o600)
        with softhsm.activated(hsm):
            yield SigningHSM(hsm, pin_file)


def policy_text(
    env: SigningHSM,
    issuer: str,
    *,
    registry: str = REGISTRY,
    team_a_key: str = "team-a",
    extra_keys: str = "",
    release_key: str | None = None,
) -> str:
    release_key_line = f"    key: {release_key}\n" if release_key else ""
    return f"""apiVersion: safeguard.dev/v1
kind: Policy
trustRoots:
  internal:
    keys:
      - name: team-a
        ref: "{env.key_ref("team-a")}"
      - name: team-b
        ref: "{env.key_ref("team-b")}"
      - name: gitlab
        ref: "{env.key_ref("gitlab")}"
      - name: spare
        ref: "{env.key_ref("spare")}"
{extra_keys}identities:
  - name: team-a-release
    trustRoot: internal
    key: {team_a_key}
    oidc:
      issuer: {issuer}
      repository: org/team-a
      ref: refs/heads/main
      workflow: .github/workflows/release.yml
    mayPublish: ["{registry}/team-a/**"]
  - name: team-b-release
    trustRoot: internal
    key: team-b
    oidc:
      issuer: {issuer}
      repository: org/team-b
      ref: refs/heads/main
      workflow: .github/workflows/release.yml
    mayPublish: ["{registry}/team-b/**"]
  - name: limited
    trustRoot: internal
    key: spare
    oidc:
      issuer: {issuer}
      repository: org/limited
      ref: refs/heads/main
    mayPublish: ["{registry}/limited/**"]
    rateLimit: {{perMinute: 3}}
  - name: gitlab-release
    trustRoot: internal
    key: gitlab
    oidc:
      issuer: {issuer}
      projectPath: my-group/my-project
      ref: refs/heads/main
    mayPublish: ["{registry}/gitlab/**"]
  - name: release-engineer-jdoe
    kind: release-engineer
    trustRoot: internal
{release_key_line}    token: "{env.release_uri()}"
    mayPublish: ["{registry}/firmware/**"]
"""


@dataclass
class ServiceEnv:
    db: Database
    tlog: TransparencyLog
    store: PolicyStore
    service: SigningService
    audit: AuditLog
    custody: KeyCustody
    data_dir: Path

    def close(self) -> None:
        self.service.close()
        self.tlog.close()
        self.db.dispose()


def build_service(data_dir: Path, policy: str, **service_options: Any) -> ServiceEnv:
    data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(default_database_url(data_dir))
    tlog = TransparencyLog(db, load_or_create(None, data_dir), LogConfig(durable=False))
    store = PolicyStore(db, refresh_interval=0)
    store.apply(policy, "test")
    audit = AuditLog(db)
    custody = KeyCustody(db, refresh_interval=0)
    options: dict[str, Any] = {"limiter": RateLimiter(), "custody": custody, **service_options}
    service = SigningService(PolicySource(store=store), InProcessLog(tlog), audit, **options)
    return ServiceEnv(db, tlog, store, service, audit, custody, data_dir)
