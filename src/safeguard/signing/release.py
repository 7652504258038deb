"""The release-engineer flow: the one kind of signer that is a person, with three factors.

A ``kind: release-engineer`` identity of the policy names a hardware token (``token:`` a
``pkcs11:`` URI, RFC 7512). To sign, the engineer needs the token itself (the key never leaves
it), its PIN (``pin-source``, ``COSIGN_PKCS11_PIN`` or a prompt) and a TOTP code (RFC 6238,
``safeguard.signing.totp``) from the enrolment ``safeguard release enroll`` created, and must cite
a change ticket matching the identity's ``ticketPattern``. ``release_sign`` checks, in order:

1. an identity of kind ``release-engineer`` holds the given token (its URI's path attributes —
   token, object, id, serial... — all match);
2. the ticket matches ``ticketPattern``;
3. the repository is in the identity's ``mayPublish`` (else ``acceptedIn``) globs;
4. the token opens with the PIN and its key is the key the policy registers for the identity
   (``key:``, when given) — before the TOTP code is consumed, so a mistyped PIN costs no code;
5. the TOTP code is the enrolment's for the current 30 s step (±1), and its step is later than
   the last one accepted: a code is never accepted twice (RFC 6238 §5.2). Five failures in a row
   lock the enrolment for 15 minutes;
6. signs the cosign statement with ``safeguard.dev/ticket``, ``safeguard.dev/release-engineer``
   and ``safeguard.dev/identity`` annotations (signed, and bound to the log by the payload hash;
   ``claims``), logs it, attaches it, and records the use in the audit trail
   (``action: release``, with the engineer, ticket and log indexes).

Every refusal after the identity is known is recorded too. TOTP secrets are stored encrypted
(NaCl ``SecretBox``, XSalsa20-Poly1305) under the node's secrets key: ``SAFEGUARD_SECRETS_KEY``
(base64 of 32 bytes) or ``<data-dir>/secrets.key`` (made 0600 on first enrolment). Nodes sharing
a database must share that key.
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa

from safeguard.core.errors import InvalidInput, SafeguardError
from safeguard.core.reference import Reference
from safeguard.keys.base import Signer, key_id_for, load_public_key
from safeguard.keys.pkcs11_uri import parse_pkcs11_uri
from safeguard.oci.client import RegistryClient
from safeguard.policy import Identity, IdentityKind, Policy
from safeguard.signing import claims as notes
from safeguard.signing import totp
from safeguard.signing.audit import ALLOWED, AuditEvent, AuditLog
from safeguard.signing.authorize import authorize
from safeguard.signing.client import attach
from safeguard.signing.errors import (
    ReleaseAlreadyEnrolled,
    ReleaseIdentityNotFound,
    ReleaseNotEnrolled,
    SecretsKeyInvalid,
    TicketInvalid,
    TOTPInvalid,
    TOTPLocked,
    TOTPReplayed,
    TOTPRequired,
)
from safeguard.signing.material import LogSink, SignedMaterial, sign_signature
from safeguard.signing.sign import TAG_WARNING, ImageSignResult
from safeguard.store.engine import Database
from safeguard.store.signing_models import ReleaseEnrolment

SECRETS_ENV: Final = "SAFEGUARD_SECRETS_KEY"
SECRETS_FILE: Final = "secrets.key"
MAX_FAILURES: Final = 5
LOCKOUT: Final = timedelta(minutes=15)
_MATCHED_ATTRIBUTES: Final = (
    "token",
    "object",
    "id",
    "serial",
    "manufacturer",
    "model",
    "slot-id",
    "type",
)


# --- the secrets key ------------------------------------------------------------------------


def secrets_key(
    data_dir: Path, *, create: bool = False, env: Mapping[str, str] | None = None
) -> bytes:
    """The key TOTP secrets are encrypted under (module doc)."""
    environ = os.environ if env is None else env
    given = environ.get(SECRETS_ENV)
    if given:
        try:
            key = base64.b64decode(given, validate=True)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise SecretsKeyInvalid(f"{SECRETS_ENV} is not base64 of 32 bytes")
        return key
    path = Path(data_dir) / SECRETS_FILE
    if path.exists():
        data = path.read_bytes()
        if len(data) != 32:
            raise SecretsKeyInvalid(f"{path} does not hold a 32-byte key")
        return data
    if not create:
        raise SecretsKeyInvalid(
            f"there is no secrets key ({path} or {SECRETS_ENV}), so no enrolment can be read",
            hint="use the data directory the enrolment was made in, or set "
            f"{SECRETS_ENV} as on the node that enrolled",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def _box(key: bytes) -> Any:
    from nacl.secret import SecretBox

    return SecretBox(key)


# --- enrolments -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enrolment:
    name: str
    identity: str
    uri: str
    """The ``otpauth://`` URI: shown once, at enrolment."""


def release_identity_for_name(policy: Policy, name: str, identity: str | None) -> Identity:
    """The release-engineer identity an enrolment named ``name`` belongs to."""
    engineers = [i for i in policy.identities if i.kind is IdentityKind.release_engineer]
    wanted = [identity] if identity else [name, f"release-engineer-{name}"]
    for candidate in wanted:
        found = next((i for i in engineers if i.name == candidate), None)
        if found is not None:
            return found
    raise ReleaseIdentityNotFound(
        f"no release-engineer identity is named {' or '.join(map(repr, wanted))}",
        hint="release-engineer identities of the policy: "
        + (", ".join(i.name for i in engineers) or "none")
        + " (pass --identity NAME)",
    )


class ReleaseEnrolments:
    """TOTP enrolments in the store (module doc)."""

    def __init__(
        self,
        db: Database,
        key: bytes | Callable[[], bytes],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``key`` is the secrets key, or a function reading it when first needed."""
        self.db = db
        self._key = key
        self._cached_box: Any = None
        self.clock = clock

    @property
    def _box(self) -> Any:
        if self._cached_box is None:
            self._cached_box = _box(self._key() if callable(self._key) else self._key)
        return self._cached_box

    def enrol(self, name: str, identity: str, *, actor: str, replace: bool = False) -> Enrolment:
        if not re.fullmatch(r"[A-Za-z0-9._@-]{1,128}", name):
            raise InvalidInput(f"{name!r} is not a usable engineer name")
        secret = totp.new_secret()
        row = {
            "name": name,
            "identity": identity,
            "secret": bytes(self._box.encrypt(secret)),
            "created_at": datetime.now(UTC),
            "created_by": actor,
            "last_counter": None,
            "failures": 0,
            "locked_until": None,
        }
        table = ReleaseEnrolment.__table__
        with self.db.write() as conn:
            existing = conn.execute(
                sa.select(table.c.name).where(
                    (table.c.name == name) | (table.c.identity == identity)
                )
            ).all()
            if existing and not replace:
                raise ReleaseAlreadyEnrolled(
                    f"{name!r} (identity {identity!r}) is already enrolled",
                    hint="pass --force to replace the enrolment (the old codes stop working)",
                )
            if existing:
                conn.execute(
                    sa.delete(ReleaseEnrolment).where(
                        (table.c.name == name) | (table.c.identity == identity)
                    )
                )
            conn.execute(sa.insert(ReleaseEnrolment).values(**row))
        return Enrolment(name, identity, totp.otpauth_uri(secret, name))

    def for_identity(self, identity: str) -> tuple[str, int | None]:
        """``(engineer name, last accepted counter)`` of the identity's enrolment."""
        table = ReleaseEnrolment.__table__
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(table.c.name, table.c.last_counter).where(table.c.identity == identity)
            ).first()
        if row is None:
            raise ReleaseNotEnrolled(
                f"nobody is enrolled for identity {identity!r}",
                hint=f"run `safeguard release enroll --name NAME --identity {identity}`",
            )
        return str(row.name), row.last_counter

    def check(self, identity: str, code: str | None) -> tuple[str, int]:
        """Accept ``code`` for ``identity``'s enrolment once (module doc, step 5); returns the
        engineer's name and the accepted counter, or raises (failures are persisted)."""
        if not code:
            raise TOTPRequired(
                "a TOTP code is required to sign as a release engineer",
                hint="pass --totp CODE from your authenticator app",
            )
        table = ReleaseEnrolment.__table__
        now = self.clock()
        moment = datetime.fromtimestamp(now, UTC)
        problem: SafeguardError | None = None
        with self.db.write() as conn:
            query = sa.select(table).where(table.c.identity == identity)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                raise ReleaseNotEnrolled(
                    f"nobody is enrolled for identity {identity!r}",
                    hint=f"run `safeguard release enroll --name NAME --identity {identity}`",
                )
            locked = row.locked_until
            if (
                locked is not None
                and (locked if locked.tzinfo else locked.replace(tzinfo=UTC)) > moment
            ):
                raise TOTPLocked(
                    f"the enrolment of {row.name!r} is locked after {MAX_FAILURES} wrong codes "
                    f"until {locked.isoformat()}",
                    hint="wait, or have an administrator re-enrol (release enroll --force)",
                )
            secret = bytes(self._box.decrypt(bytes(row.secret)))
            counter = totp.match(secret, code, now)
            updates: dict[str, Any]
            if counter is None:
                failures = row.failures + 1
                updates = {"failures": failures}
                if failures >= MAX_FAILURES:
                    updates = {"failures": 0, "locked_until": moment + LOCKOUT}
                problem = TOTPInvalid(
                    "the TOTP code is wrong (or from another time step)",
                    hint="enter the current code of the Safeguard entry in your authenticator; "
                    "check the device's clock",
                )
            elif row.last_counter is not None and counter <= row.last_counter:
                updates = {"failures": row.failures + 1}
                problem = TOTPReplayed(
                    "this TOTP code (or a later one) was already used; a code is accepted once",
                    hint="wait for the next code",
                )
            else:
                updates = {"last_counter": counter, "failures": 0, "locked_until": None}
            conn.execute(
                sa.update(ReleaseEnrolment).where(table.c.name == row.name).values(**updates)
            )
        if problem is not None:
            raise problem
        assert counter is not None
        return str(row.name), counter


# --- finding the identity -------------------------------------------------------------------


def identity_for_token(policy: Policy, token_uri: str) -> Identity:
    """The release-engineer identity whose ``token`` the given URI names (module doc, 1)."""
    given = parse_pkcs11_uri(token_uri)
    if given.token is None and given.serial is None:
        raise InvalidInput(
            "--token names no token", hint='write "pkcs11:token=LABEL;object=KEY?module-path=..."'
        )
    for identity in policy.identities:
        if identity.kind is not IdentityKind.release_engineer or identity.token is None:
            continue
        wanted = parse_pkcs11_uri(identity.token)
        if all(
            given.path.get(attr) == wanted.path.get(attr)
            for attr in _MATCHED_ATTRIBUTES
            if attr in wanted.path
        ):
            return identity
    raise ReleaseIdentityNotFound(
        f"no release-engineer identity of the policy holds the token {given.redacted()}",
        hint="use the hardware token the policy registers for you (identities[].token)",
    )


def _registered_key_id(
    policy: Policy, identity: Identity, read: Callable[[str], bytes]
) -> str | None:
    if identity.key is None:
        return None
    root = policy.trust_root(identity.trust_root)
    key = root.key(identity.key) if root is not None else None
    if key is None or key.public_key is None:
        return None
    return key_id_for(load_public_key(read(key.public_key)))


# --- signing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    identity: str
    engineer: str
    ticket: str
    material: SignedMaterial
    result: ImageSignResult
    audit_id: int

    def as_dict(self) -> dict[str, Any]:
        out = self.result.as_dict()
        out.update(
            identity=self.identity,
            engineer=self.engineer,
            ticket=self.ticket,
            logIndexes=self.material.log_indexes,
            keyId=self.material.key_id,
            auditId=self.audit_id,
        )
        return out


OpenToken = Callable[[str, str | None], Signer]
"""``open_token(uri, module_path) -> Signer``: opens the hardware token (asks for the PIN)."""


async def release_sign(
    image: str,
    *,
    policy: Policy,
    read: Callable[[str], bytes],
    token_uri: str,
    ticket: str,
    code: str | None,
    open_token: OpenToken,
    enrolments: ReleaseEnrolments,
    audit: AuditLog,
    log: LogSink,
    insecure: bool = False,
    legacy: bool = True,
    client: str = "cli",
) -> ReleaseResult:
    """Sign ``image`` as a release engineer (module doc); every decision is audited."""
    event = AuditEvent(action="release", client=client, kind="signature", ticket=ticket[:128])
    event.claims = {"token": parse_pkcs11_uri(token_uri).redacted()}
    try:
        result = await _release_sign(
            image, policy, read, token_uri, ticket, code, open_token, enrolments, log,
            insecure, legacy, event,
        )  # fmt: skip
    except SafeguardError as exc:
        event.status, event.code, event.reason = exc.http_status, exc.code, exc.message
        await audit.record(event)
        raise
    event.decision, event.status, event.code = ALLOWED, 201, "SIGNED"
    event.reason = f"release signature by {event.engineer} for ticket {ticket}"
    audit_id = await audit.record(event)
    return ReleaseResult(result[0], result[1], ticket, result[2], result[3], audit_id)


async def _release_sign(
    image: str,
    policy: Policy,
    read: Callable[[str], bytes],
    token_uri: str,
    ticket: str,
    code: str | None,
    open_token: OpenToken,
    enrolments: ReleaseEnrolments,
    log: LogSink,
    insecure: bool,
    legacy: bool,
    event: AuditEvent,
) -> tuple[str, str, SignedMaterial, ImageSignResult]:
    ref = Reference.parse(image)
    event.repository = ref.name
    if ref.digest is not None:
        event.digest = str(ref.digest)
    identity = identity_for_token(policy, token_uri)
    event.identity = identity.name
    engineer, _ = enrolments.for_identity(identity.name)
    event.engineer = engineer
    pattern = identity.ticket_regex
    if pattern is not None and not pattern.fullmatch(ticket):
        raise TicketInvalid(
            f"ticket {ticket!r} does not match {pattern.pattern}",
            hint="cite the change ticket this release belongs to, e.g. REL-123",
        )
    authorize(policy, identity, ref.name, globs=list(identity.may_publish or identity.accepted_in))
    assert identity.token is not None
    module = parse_pkcs11_uri(token_uri).module_path or parse_pkcs11_uri(identity.token).module_path
    async with RegistryClient.for_reference(ref, allow_insecure=insecure) as registry:
        warnings = [TAG_WARNING.format(ref=str(ref))] if ref.digest is None else []
        descriptor = await registry.resolve(ref.repository, ref.reference)
        pinned = ref.with_digest(descriptor.digest)
        event.digest = str(descriptor.digest)
        signer = open_token(token_uri, module)
        try:
            event.key_id = signer.key_id
            registered = _registered_key_id(policy, identity, read)
            if registered is not None and registered != signer.key_id:
                raise ReleaseIdentityNotFound(
                    f"the key on the token is not the key the policy registers for "
                    f"{identity.name!r}",
                    hint="use your own hardware token",
                )
            engineer, _ = enrolments.check(identity.name, code)
            annotations = {
                notes.IDENTITY: identity.name,
                notes.RELEASE_ENGINEER: engineer,
                notes.TICKET: ticket,
            }
            material = await sign_signature(signer, pinned, annotations, log, legacy=legacy)
        finally:
            close = getattr(signer, "close", None)
            if callable(close):
                close()
        event.log_indexes = material.log_indexes
        pushed, legacy_result = await attach(registry, pinned, material)
    result = ImageSignResult(
        str(pinned),
        descriptor.digest,
        material.bundle,
        pushed.digest,
        pushed.tag_schema_updated,
        legacy_result,
        warnings,
    )
    return identity.name, engineer, material, result
