"""Tables of the signing service (``safeguard.signing``).

* ``signing_events``: the audit trail. One row per decision of the signing service or the
  release-engineer flow, allowed or refused: when, which identity (and the subset of its token's
  claims that says which build it was), which repository and digest, the decision with its
  stable code and reason, the key, and the log indexes of the entries it produced, which link the
  event to the transparency log. Rows are only ever inserted.
* ``signing_keys``: custody of signing keys. One row per key: its public half (PEM and cosign
  key id), where the private half lives (a ``pkcs11:`` URI without any PIN, or nothing for a
  registered public key), and its lifecycle times (retired, revoked) with the successor a
  rotation created.
* ``signing_key_events``: who did what to which key, when, effective from when, and why.
* ``release_enrolments``: release engineers' TOTP enrolments: the encrypted RFC 6238 secret,
  the last time step accepted (codes of that step or earlier are refused: no replay), and the
  failure counter behind the lockout.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from safeguard.store.base import Base, utcnow

NAME: Final = 255
DIGEST: Final = 200
KEY_ID: Final = 100
BIG_ID: Final = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class SigningEvent(Base):
    __tablename__ = "signing_events"
    __table_args__ = (
        sa.Index(None, "identity", "at"),
        sa.Index(None, "digest"),
        sa.Index(None, "action", "at"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    action: Mapped[str] = mapped_column(sa.String(16))
    decision: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[int] = mapped_column(sa.Integer)
    code: Mapped[str] = mapped_column(sa.String(64))
    reason: Mapped[str] = mapped_column(sa.Text)
    identity: Mapped[str | None] = mapped_column(sa.String(NAME))
    kind: Mapped[str | None] = mapped_column(sa.String(16))
    repository: Mapped[str | None] = mapped_column(sa.String(NAME))
    digest: Mapped[str | None] = mapped_column(sa.String(DIGEST))
    claims: Mapped[str | None] = mapped_column(sa.Text)
    key_id: Mapped[str | None] = mapped_column(sa.String(KEY_ID))
    log_indexes: Mapped[str | None] = mapped_column(sa.String(NAME))
    client: Mapped[str] = mapped_column(sa.String(64))
    ticket: Mapped[str | None] = mapped_column(sa.String(128))
    engineer: Mapped[str | None] = mapped_column(sa.String(NAME))


class SigningKey(Base):
    __tablename__ = "signing_keys"
    __table_args__ = (sa.Index(None, "key_id"),)

    name: Mapped[str] = mapped_column(sa.String(NAME), primary_key=True)
    key_id: Mapped[str] = mapped_column(sa.String(KEY_ID))
    algorithm: Mapped[str] = mapped_column(sa.String(32))
    public_key: Mapped[str] = mapped_column(sa.Text)
    ref: Mapped[str | None] = mapped_column(sa.Text)
    origin: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(sa.String(NAME))
    retired_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    revocation_reason: Mapped[str | None] = mapped_column(sa.Text)
    predecessor: Mapped[str | None] = mapped_column(sa.String(NAME))
    successor: Mapped[str | None] = mapped_column(sa.String(NAME))


class SigningKeyEvent(Base):
    __tablename__ = "signing_key_events"
    __table_args__ = (sa.Index(None, "key_name", "at"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    key_name: Mapped[str] = mapped_column(sa.String(NAME))
    action: Mapped[str] = mapped_column(sa.String(16))
    actor: Mapped[str] = mapped_column(sa.String(NAME))
    effective_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    detail: Mapped[str | None] = mapped_column(sa.Text)


class ReleaseEnrolment(Base):
    __tablename__ = "release_enrolments"

    name: Mapped[str] = mapped_column(sa.String(NAME), primary_key=True)
    identity: Mapped[str] = mapped_column(sa.String(NAME))
    secret: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(sa.String(NAME))
    last_counter: Mapped[int | None] = mapped_column(sa.BigInteger)
    failures: Mapped[int] = mapped_column(sa.Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
