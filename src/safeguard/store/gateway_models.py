"""Tables of the registry gateway (``safeguard.gateway``).

* ``gateway_pulls``: the pull log, one row per manifest ``GET``/``HEAD`` answered through the
  gateway (``source = "gateway"``) or imported from a registry's notification events
  (``source = "event"``); "last pull of this digest" is one indexed ``max(at)``.
* ``gateway_audit``: every push-policy and admin decision (who, from where, what, which
  decision and why).
* ``gateway_pending``: grace-mode tags, pushed but not visible until a valid signature arrives;
  released, expired into quarantine, or superseded by a later push of the same tag.
* ``gateway_referrers``: manifests with a ``subject`` pushed through the gateway, for registries
  without the referrers API (distribution-spec v1.1, "Listing Referrers").
* ``gateway_quarantine``: the journal of quarantine moves and purges, one row per artifact,
  whose ``state`` says which step last completed, so a move resumes after a crash.
* ``gateway_findings``: what the gateway found wrong (a grace period that ran out unsigned).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from safeguard.store.base import Base, utcnow

DIGEST: Final = 200
NAME: Final = 255
TAG: Final = 128
# 64-bit ids on PostgreSQL; SQLite's INTEGER PRIMARY KEY is already 64-bit and must stay
# "INTEGER" to be the rowid (and autoincrement).
BIG_ID: Final = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class GatewayPull(Base):
    __tablename__ = "gateway_pulls"
    __table_args__ = (
        sa.Index(None, "repository", "digest", "at"),
        sa.Index(None, "digest", "at"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    repository: Mapped[str] = mapped_column(sa.String(NAME))
    reference: Mapped[str] = mapped_column(sa.String(DIGEST))
    digest: Mapped[str | None] = mapped_column(sa.String(DIGEST))
    client: Mapped[str] = mapped_column(sa.String(64))
    identity: Mapped[str] = mapped_column(sa.String(NAME))
    user_agent: Mapped[str] = mapped_column(sa.String(NAME))
    source: Mapped[str] = mapped_column(sa.String(16))
    quarantined: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class GatewayAudit(Base):
    __tablename__ = "gateway_audit"
    __table_args__ = (sa.Index(None, "repository", "at"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    action: Mapped[str] = mapped_column(sa.String(32))
    decision: Mapped[str] = mapped_column(sa.String(16))
    repository: Mapped[str] = mapped_column(sa.String(NAME))
    tag: Mapped[str | None] = mapped_column(sa.String(TAG))
    digest: Mapped[str | None] = mapped_column(sa.String(DIGEST))
    old_digest: Mapped[str | None] = mapped_column(sa.String(DIGEST))
    client: Mapped[str] = mapped_column(sa.String(64))
    identity: Mapped[str] = mapped_column(sa.String(NAME))
    mode: Mapped[str | None] = mapped_column(sa.String(16))
    reason: Mapped[str] = mapped_column(sa.Text)


class GatewayPending(Base):
    __tablename__ = "gateway_pending"
    __table_args__ = (
        sa.Index(None, "state", "deadline"),
        sa.Index(None, "repository", "tag"),
        sa.Index(None, "repository", "digest"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    repository: Mapped[str] = mapped_column(sa.String(NAME))
    tag: Mapped[str] = mapped_column(sa.String(TAG))
    digest: Mapped[str] = mapped_column(sa.String(DIGEST))
    media_type: Mapped[str] = mapped_column(sa.String(NAME))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    deadline: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    state: Mapped[str] = mapped_column(sa.String(16))
    client: Mapped[str] = mapped_column(sa.String(64))
    identity: Mapped[str] = mapped_column(sa.String(NAME))
    resolved_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class GatewayReferrer(Base):
    __tablename__ = "gateway_referrers"
    __table_args__ = (sa.Index(None, "repository", "subject"),)

    repository: Mapped[str] = mapped_column(sa.String(NAME), primary_key=True)
    digest: Mapped[str] = mapped_column(sa.String(DIGEST), primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(DIGEST))
    media_type: Mapped[str] = mapped_column(sa.String(NAME))
    artifact_type: Mapped[str | None] = mapped_column(sa.String(NAME))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    annotations: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class GatewayQuarantine(Base):
    __tablename__ = "gateway_quarantine"
    __table_args__ = (
        sa.Index(None, "state"),
        sa.Index(None, "source_repository", "digest"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    source_repository: Mapped[str] = mapped_column(sa.String(NAME))
    source_tag: Mapped[str | None] = mapped_column(sa.String(TAG))
    digest: Mapped[str] = mapped_column(sa.String(DIGEST))
    target_repository: Mapped[str] = mapped_column(sa.String(NAME))
    until: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(sa.Text)
    actor: Mapped[str] = mapped_column(sa.String(NAME))
    state: Mapped[str] = mapped_column(sa.String(16))
    serve: Mapped[bool] = mapped_column(sa.Boolean)
    referrers: Mapped[list[str] | None] = mapped_column(sa.JSON)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class GatewayFinding(Base):
    __tablename__ = "gateway_findings"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(sa.String(32))
    repository: Mapped[str] = mapped_column(sa.String(NAME))
    tag: Mapped[str | None] = mapped_column(sa.String(TAG))
    digest: Mapped[str | None] = mapped_column(sa.String(DIGEST))
    detail: Mapped[str] = mapped_column(sa.Text)
