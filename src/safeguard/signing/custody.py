"""Custody of signing keys: create, register, rotate, retire, revoke — and what that means later.

Every key the signing service may use has a record (``signing_keys``) and a history
(``signing_key_events``: action, actor, time, effective time, reason). ``create`` generates an
ECDSA key pair *inside* the HSM (PKCS#11 v2.40 §2.3.6 ``CKM_EC_KEY_PAIR_GEN`` through
python-pkcs11; the private key is ``CKA_SENSITIVE``, non-extractable, ``CKA_TOKEN``) and records
its ``pkcs11:`` URI (RFC 7512; module path and PIN *source* kept, never a PIN); ``register``
records a key made elsewhere by its public half. ``rotate`` creates a successor and retires the
old key at a given time, linking the two.

**What the times mean.** Time is the transparency log's integrated time, never the wall clock of
whoever verifies (DESIGN.md, "Time comes from the log"); ``key_status_at(key_id, log_time)``:

* *retired at T*: the key signs no more. Signatures the log integrated before T stay valid;
  those integrated at or after T are ``retired`` (refused).
* *revoked at T* (compromise): signatures integrated at or after T are ``revoked`` (refused);
  those before T are ``flag_for_review`` — still cryptographically valid, but someone must look
  at them, since the compromise may predate its discovery.
* neither: ``valid``; a key id with no record: ``unknown`` (custody has nothing to say).

The same rules apply to the policy's own ``trustRoots.*.keys[].retiredAt``/``revokedAt``
(``policy_key_times``); when both say something the stricter answer wins. The signing service
refuses to sign with a key that is retired or has any revocation recorded. ``verify/custody_check``
applies ``key_status_at`` to a verdict's evidence.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa

from safeguard.core.errors import SafeguardError
from safeguard.keys.base import algorithm_for, key_id_for, load_public_key, public_key_pem
from safeguard.keys.lifecycle import KeyState, KeyTimes, aware, stricter
from safeguard.keys.pkcs11_uri import PKCS11URI, parse_pkcs11_uri
from safeguard.signing.errors import (
    CustodyKeyExists,
    CustodyKeyNotFound,
    CustodyTransitionInvalid,
    SigningKeyUnavailable,
)
from safeguard.store.engine import Database
from safeguard.store.signing_models import SigningKey, SigningKeyEvent

CURVES: Final = {"p256": "secp256r1", "p384": "secp384r1"}
_SAFE: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    name: str
    key_id: str
    algorithm: str
    public_key_pem: str
    ref: str | None
    origin: str
    created_at: datetime
    created_by: str
    retired_at: datetime | None = None
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    predecessor: str | None = None
    successor: str | None = None

    @property
    def times(self) -> KeyTimes:
        return KeyTimes(
            self.key_id,
            self.name,
            self.retired_at,
            self.revoked_at,
            self.revocation_reason,
            source="custody",
        )

    def status_at(self, log_time: datetime) -> KeyState:
        return self.times.state_at(log_time)

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        def iso(when: datetime | None) -> str | None:
            return when.isoformat() if when is not None else None

        return {
            "name": self.name,
            "keyId": self.key_id,
            "algorithm": self.algorithm,
            "ref": self.ref,
            "origin": self.origin,
            "createdAt": iso(self.created_at),
            "createdBy": self.created_by,
            "retiredAt": iso(self.retired_at),
            "revokedAt": iso(self.revoked_at),
            "revocationReason": self.revocation_reason,
            "predecessor": self.predecessor,
            "successor": self.successor,
            "state": self.status_at(now or datetime.now(UTC)).value,
            "publicKey": self.public_key_pem,
        }


def _record(row: Any) -> KeyRecord:
    def opt(when: datetime | None) -> datetime | None:
        return aware(when) if when is not None else None

    return KeyRecord(
        row.name,
        row.key_id,
        row.algorithm,
        row.public_key,
        row.ref,
        row.origin,
        aware(row.created_at),
        row.created_by,
        opt(row.retired_at),
        opt(row.revoked_at),
        row.revocation_reason,
        row.predecessor,
        row.successor,
    )


# --- PKCS#11 key generation ------------------------------------------------------------------


def _quote(value: bytes) -> str:
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in value)


def key_uri(token: PKCS11URI, label: str, key_id: bytes) -> str:
    """The RFC 7512 URI of a key on ``token``: its token attributes, ``object`` and ``id``, and
    the module path and PIN source of ``token`` (a ``pin-value`` is never copied)."""
    path = {k: v for k, v in token.path.items() if k not in ("object", "id", "type")}
    path["object"] = label.encode("utf-8")
    path["id"] = key_id
    query = {k: v for k, v in token.query.items() if k in ("module-path", "pin-source")}
    text = "pkcs11:" + ";".join(
        f"{k}={''.join(f'%{b:02x}' for b in v) if k == 'id' else _quote(v)}"
        for k, v in path.items()
    )
    if query:
        text += "?" + "&".join(f"{k}={_quote(v)}" for k, v in query.items())
    return text


def _pin(uri: PKCS11URI, pin: str | None, env: Mapping[str, str]) -> str | None:
    from pathlib import Path

    if pin is not None:
        return pin
    if uri.pin_value is not None:
        return uri.pin_value
    if uri.pin_source is not None:
        path = uri.pin_source.removeprefix("file:")
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SigningKeyUnavailable(
                f"cannot read the PIN from {path}: {exc.strerror}"
            ) from None
    return env.get("COSIGN_PKCS11_PIN")


def generate_hsm_key(
    token_uri: str,
    label: str,
    *,
    curve: str = "p256",
    pin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[str, bytes]:
    """Generate an EC key pair labelled ``label`` on the token ``token_uri`` names; return the
    new key's URI and its public key PEM (module doc)."""
    import os

    import pkcs11
    from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters

    from safeguard.keys.pkcs11 import public_key_from_attributes

    environ = os.environ if env is None else env
    if curve not in CURVES:
        raise CustodyTransitionInvalid(f"unknown curve {curve!r}", hint="use p256 or p384")
    uri = parse_pkcs11_uri(token_uri)
    module = uri.module_path or environ.get("COSIGN_PKCS11_MODULE_PATH")
    if not module:
        raise CustodyTransitionInvalid(
            "no PKCS#11 module given", hint="add ?module-path=/path/to/module.so to the token URI"
        )
    if uri.token is None and uri.serial is None:
        raise CustodyTransitionInvalid(
            "the token URI names no token", hint="write pkcs11:token=LABEL?module-path=..."
        )
    user_pin = _pin(uri, pin, environ)
    try:
        library = pkcs11.lib(module)
        criteria: dict[str, Any] = {}
        if uri.token is not None:
            criteria["token_label"] = uri.token
        if uri.serial is not None:
            criteria["token_serial"] = uri.serial.encode()
        token = library.get_token(**criteria)
        try:
            session = token.open(rw=True, user_pin=user_pin)
        except pkcs11.UserAlreadyLoggedIn:  # this process already holds a login on the token
            session = token.open(rw=True)
    except (pkcs11.PinIncorrect, pkcs11.PinLenRange, pkcs11.PinInvalid):
        raise SigningKeyUnavailable(
            f"the PIN was rejected by token {uri.token!r}",
            hint="check pin-source or COSIGN_PKCS11_PIN; repeated failures lock the token",
        ) from None
    except (pkcs11.NoSuchToken, pkcs11.MultipleTokensReturned):
        raise SigningKeyUnavailable(f"no single PKCS#11 token matches {uri.redacted()}") from None
    except pkcs11.PKCS11Error as exc:
        raise SigningKeyUnavailable(f"cannot open the token {uri.redacted()}: {exc!r}") from None
    try:
        existing = list(
            session.get_objects({Attribute.LABEL: label, Attribute.CLASS: ObjectClass.PRIVATE_KEY})
        )
        if existing:
            raise CustodyKeyExists(
                f"token {uri.token!r} already holds a private key labelled {label!r}",
                hint="choose another key name, or register the existing key's public half",
            )
        key_id = secrets.token_bytes(8)
        params = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(CURVES[curve])},
            local=True,
        )  # fmt: skip
        public, _private = params.generate_keypair(
            store=True,
            label=label,
            id=key_id,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            private_template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.PRIVATE: True,
            },
        )
        key = public_key_from_attributes(public[Attribute.EC_PARAMS], public[Attribute.EC_POINT])
    except SafeguardError:
        raise
    except pkcs11.PKCS11Error as exc:
        raise SigningKeyUnavailable(f"the token failed to generate the key: {exc!r}") from None
    finally:
        session.close()
    return key_uri(uri, label, key_id), public_key_pem(key)


# --- the store -------------------------------------------------------------------------------


class KeyCustody:
    """Key records and their lifecycle in the store (module doc)."""

    def __init__(
        self,
        db: Database,
        *,
        refresh_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: dict[str, list[KeyTimes]] = {}
        self._loaded_at: float | None = None

    # -- reading --

    def get(self, name: str) -> KeyRecord:
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(SigningKey.__table__).where(SigningKey.name == name)
            ).first()
        if row is None:
            raise CustodyKeyNotFound(
                f"no key named {name!r} in custody", hint="see `safeguard keys list`"
            )
        return _record(row)

    def records(self) -> list[KeyRecord]:
        table = SigningKey.__table__
        with self.db.read() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c.created_at, table.c.name))
            return [_record(r) for r in rows]

    def by_key_id(self, key_id: str) -> list[KeyRecord]:
        table = SigningKey.__table__
        with self.db.read() as conn:
            rows = conn.execute(sa.select(table).where(table.c.key_id == key_id))
            return [_record(r) for r in rows]

    def history(self, name: str | None = None) -> list[dict[str, Any]]:
        table = SigningKeyEvent.__table__
        query = sa.select(table).order_by(table.c.id)
        if name is not None:
            query = query.where(table.c.key_name == name)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "at": aware(r.at).isoformat(),
                "key": r.key_name,
                "action": r.action,
                "actor": r.actor,
                "effectiveAt": aware(r.effective_at).isoformat() if r.effective_at else None,
                "reason": r.reason,
                "detail": json.loads(r.detail) if r.detail else None,
            }
            for r in rows
        ]

    def _times(self) -> dict[str, list[KeyTimes]]:
        now = self._clock()
        with self._lock:
            if self._loaded_at is not None and now - self._loaded_at < self.refresh_interval:
                return self._snapshot
        snapshot: dict[str, list[KeyTimes]] = {}
        for record in self.records():
            snapshot.setdefault(record.key_id, []).append(record.times)
        with self._lock:
            self._snapshot, self._loaded_at = snapshot, now
        return snapshot

    def key_status_at(
        self,
        key_id: str,
        log_time: datetime,
        *,
        extra: Mapping[str, Iterable[KeyTimes]] | None = None,
    ) -> KeyState:
        """The state of ``key_id`` for a signature the log integrated at ``log_time`` (module
        doc); ``extra`` adds other sources' times (the policy's, ``policy_key_times``)."""
        state = KeyState.UNKNOWN
        sources = list(self._times().get(key_id, ()))
        if extra is not None:
            sources.extend(extra.get(key_id, ()))
        for times in sources:
            state = stricter(state, times.state_at(log_time))
        return state

    def times_for(self, key_id: str) -> list[KeyTimes]:
        return list(self._times().get(key_id, ()))

    # -- writing --

    def _event(
        self,
        conn: sa.Connection,
        name: str,
        action: str,
        actor: str,
        *,
        effective_at: datetime | None = None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        conn.execute(
            sa.insert(SigningKeyEvent).values(
                at=datetime.now(UTC),
                key_name=name,
                action=action,
                actor=actor,
                effective_at=effective_at,
                reason=reason,
                detail=json.dumps(detail, sort_keys=True) if detail else None,
            )
        )

    def _insert(
        self,
        conn: sa.Connection,
        name: str,
        pem: bytes,
        *,
        ref: str | None,
        origin: str,
        actor: str,
        predecessor: str | None = None,
    ) -> KeyRecord:
        exists = conn.execute(sa.select(SigningKey.name).where(SigningKey.name == name)).first()
        if exists is not None:
            raise CustodyKeyExists(f"a key named {name!r} is already in custody")
        key = load_public_key(pem)
        values = {
            "name": name,
            "key_id": key_id_for(key),
            "algorithm": algorithm_for(key).value,
            "public_key": public_key_pem(key).decode("ascii"),
            "ref": ref,
            "origin": origin,
            "created_at": datetime.now(UTC),
            "created_by": actor,
            "predecessor": predecessor,
        }
        conn.execute(sa.insert(SigningKey).values(**values))
        detail = {"keyId": values["key_id"], "ref": ref, "algorithm": values["algorithm"]}
        self._event(conn, name, "create" if origin == "generated" else "register", actor,
                    detail=detail)  # fmt: skip
        return KeyRecord(
            name,
            str(values["key_id"]),
            str(values["algorithm"]),
            str(values["public_key"]),
            ref,
            origin,
            values["created_at"],  # type: ignore[arg-type]
            actor,
            predecessor=predecessor,
        )

    def _changed(self) -> None:
        with self._lock:
            self._loaded_at = None

    def create(self, name: str, *, token_uri: str, actor: str, curve: str = "p256") -> KeyRecord:
        """Generate ``name`` in the HSM token ``token_uri`` names and record it."""
        with self.db.read() as conn:
            if conn.execute(sa.select(SigningKey.name).where(SigningKey.name == name)).first():
                raise CustodyKeyExists(f"a key named {name!r} is already in custody")
        ref, pem = generate_hsm_key(token_uri, name, curve=curve)
        with self.db.write() as conn:
            record = self._insert(conn, name, pem, ref=ref, origin="generated", actor=actor)
        self._changed()
        return record

    def register(
        self, name: str, public_key: bytes, *, actor: str, ref: str | None = None
    ) -> KeyRecord:
        """Record a key made elsewhere by its public half (and, if it signs here, its ref)."""
        if ref is not None and ref.lower().startswith("pkcs11:"):
            parsed = parse_pkcs11_uri(ref)
            if parsed.pin_value is not None:
                raise CustodyTransitionInvalid(
                    "the key reference carries a PIN (pin-value)",
                    hint="use pin-source=file:/path instead; custody never stores a PIN",
                )
        with self.db.write() as conn:
            record = self._insert(conn, name, public_key, ref=ref, origin="registered", actor=actor)
        self._changed()
        return record

    def _transition(
        self,
        name: str,
        action: str,
        *,
        at: datetime,
        actor: str,
        reason: str | None,
        successor: str | None = None,
    ) -> KeyRecord:
        at = aware(at)
        with self.db.write() as conn:
            row = conn.execute(
                sa.select(SigningKey.__table__).where(SigningKey.name == name)
            ).first()
            if row is None:
                raise CustodyKeyNotFound(
                    f"no key named {name!r} in custody", hint="see `safeguard keys list`"
                )
            record = _record(row)
            values: dict[str, Any] = {}
            if action == "revoke":
                if record.revoked_at is not None and record.revoked_at <= at:
                    raise CustodyTransitionInvalid(
                        f"key {name!r} is already revoked since {record.revoked_at.isoformat()}",
                        hint="a revocation can only be moved earlier",
                    )
                if not reason:
                    raise CustodyTransitionInvalid(
                        "a revocation needs a reason", hint="pass --reason WHY"
                    )
                values = {"revoked_at": at, "revocation_reason": reason}
            else:
                if record.revoked_at is not None:
                    raise CustodyTransitionInvalid(
                        f"key {name!r} is revoked; it cannot be retired or rotated"
                    )
                if record.retired_at is not None:
                    raise CustodyTransitionInvalid(
                        f"key {name!r} is already retired at {record.retired_at.isoformat()}"
                        + (f" (successor {record.successor})" if record.successor else ""),
                        hint="revoke it if it was compromised",
                    )
                values = {"retired_at": at}
                if successor is not None:
                    values["successor"] = successor
            conn.execute(sa.update(SigningKey).where(SigningKey.name == name).values(**values))
            detail = {"successor": successor} if successor else None
            self._event(conn, name, action, actor, effective_at=at, reason=reason, detail=detail)
            fresh = conn.execute(
                sa.select(SigningKey.__table__).where(SigningKey.name == name)
            ).one()
        self._changed()
        return _record(fresh)

    def retire(self, name: str, *, at: datetime, actor: str, reason: str | None) -> KeyRecord:
        return self._transition(name, "retire", at=at, actor=actor, reason=reason)

    def revoke(self, name: str, *, at: datetime, actor: str, reason: str) -> KeyRecord:
        return self._transition(name, "revoke", at=at, actor=actor, reason=reason)

    def rotate(
        self,
        name: str,
        *,
        successor: str,
        at: datetime,
        actor: str,
        reason: str | None = None,
        token_uri: str | None = None,
        public_key: bytes | None = None,
        successor_ref: str | None = None,
        curve: str = "p256",
    ) -> tuple[KeyRecord, KeyRecord]:
        """Make ``successor`` (generated on ``token_uri``, by default the old key's token; or
        registered from ``public_key``) and retire ``name`` at ``at`` in favour of it."""
        old = self.get(name)
        if old.revoked_at is not None or old.retired_at is not None:
            raise CustodyTransitionInvalid(
                f"key {name!r} is already {'revoked' if old.revoked_at else 'retired'}",
                hint="rotate the active key",
            )
        if public_key is not None:
            new = self.register(successor, public_key, actor=actor, ref=successor_ref)
        else:
            uri = token_uri or old.ref
            if uri is None or not uri.lower().startswith("pkcs11:"):
                raise CustodyTransitionInvalid(
                    f"key {name!r} has no HSM reference to make its successor on",
                    hint="pass --hsm pkcs11:token=...?module-path=... or --public-key FILE",
                )
            new = self.create(successor, token_uri=uri, actor=actor, curve=curve)
        with self.db.write() as conn:
            conn.execute(
                sa.update(SigningKey).where(SigningKey.name == successor).values(predecessor=name)
            )
        retired = self._transition(
            name, "rotate", at=at, actor=actor, reason=reason, successor=successor
        )
        return retired, self.get(new.name)


def policy_key_times(
    policy: Any, read: Callable[[str], bytes], known: Mapping[str, str] | None = None
) -> dict[str, list[KeyTimes]]:
    """``KeyTimes`` of the policy's keys that declare ``retiredAt``/``revokedAt``, by key id: the
    id of a ``publicKey`` file (read through ``read``), or for a key known only by its ``ref``,
    the id ``known`` gives for its name (custody records: ``{record.name: record.key_id}``)."""
    out: dict[str, list[KeyTimes]] = {}
    for root_name, root in policy.trust_roots.items():
        for key in root.keys:
            if key.retired_at is None and key.revoked_at is None:
                continue
            key_id: str | None = None
            if key.public_key is not None:
                try:
                    key_id = key_id_for(load_public_key(read(key.public_key)))
                except (SafeguardError, KeyError, OSError):
                    key_id = None
            elif known is not None:
                key_id = known.get(key.name)
            if key_id is None:
                continue
            out.setdefault(key_id, []).append(
                KeyTimes(
                    key_id,
                    f"{root_name}/{key.name}",
                    key.retired_at,
                    key.revoked_at,
                    key.revocation_reason,
                    source="policy",
                )
            )
    return out


class CustodyView:
    """Custody records and the policy's own key times together (``key_status_at`` of both, the
    stricter answer winning): what ``verify.custody_check.apply_custody`` should be given."""

    def __init__(
        self,
        custody: KeyCustody,
        policy: Any | None = None,
        read: Callable[[str], bytes] | None = None,
    ) -> None:
        self.custody = custody
        self.extra: dict[str, list[KeyTimes]] = {}
        if policy is not None:
            known = {r.name: r.key_id for r in custody.records()}
            self.extra = policy_key_times(policy, read or _no_files, known)

    def key_status_at(self, key_id: str, log_time: datetime) -> KeyState:
        return self.custody.key_status_at(key_id, log_time, extra=self.extra)

    def times_for(self, key_id: str) -> list[KeyTimes]:
        return [*self.custody.times_for(key_id), *self.extra.get(key_id, ())]


def _no_files(path: str) -> bytes:
    raise KeyError(path)
