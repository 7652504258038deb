"""Signing service: audit events, key custody and its history, release-engineer enrolments.

Revision ID: 0005_signing
Revises: 0004_gateway
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_signing"
down_revision = "0004_gateway"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "signing_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        _at("at"),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("identity", sa.String(255), nullable=True),
        sa.Column("kind", sa.String(16), nullable=True),
        sa.Column("repository", sa.String(255), nullable=True),
        sa.Column("digest", sa.String(200), nullable=True),
        sa.Column("claims", sa.Text(), nullable=True),
        sa.Column("key_id", sa.String(100), nullable=True),
        sa.Column("log_indexes", sa.String(255), nullable=True),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("ticket", sa.String(128), nullable=True),
        sa.Column("engineer", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_events")),
    )
    op.create_index(op.f("ix_signing_events_action_at"), "signing_events", ["action", "at"])
    op.create_index(op.f("ix_signing_events_digest"), "signing_events", ["digest"])
    op.create_index(op.f("ix_signing_events_identity_at"), "signing_events", ["identity", "at"])
    op.create_table(
        "signing_keys",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("key_id", sa.String(100), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("ref", sa.Text(), nullable=True),
        sa.Column("origin", sa.String(16), nullable=False),
        _at("created_at"),
        sa.Column("created_by", sa.String(255), nullable=False),
        _at("retired_at", nullable=True),
        _at("revoked_at", nullable=True),
        sa.Column("revocation_reason", sa.Text(), nullable=True),
        sa.Column("predecessor", sa.String(255), nullable=True),
        sa.Column("successor", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_signing_keys")),
    )
    op.create_index(op.f("ix_signing_keys_key_id"), "signing_keys", ["key_id"])
    op.create_table(
        "signing_key_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        _at("at"),
        sa.Column("key_name", sa.String(255), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        _at("effective_at", nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_key_events")),
    )
    op.create_index(
        op.f("ix_signing_key_events_key_name_at"), "signing_key_events", ["key_name", "at"]
    )
    op.create_table(
        "release_enrolments",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("identity", sa.String(255), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        _at("created_at"),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("last_counter", sa.BigInteger(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        _at("locked_until", nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_release_enrolments")),
    )


def downgrade() -> None:
    op.drop_table("release_enrolments")
    op.drop_index(op.f("ix_signing_key_events_key_name_at"), table_name="signing_key_events")
    op.drop_table("signing_key_events")
    op.drop_index(op.f("ix_signing_keys_key_id"), table_name="signing_keys")
    op.drop_table("signing_keys")
    op.drop_index(op.f("ix_signing_events_identity_at"), table_name="signing_events")
    op.drop_index(op.f("ix_signing_events_digest"), table_name="signing_events")
    op.drop_index(op.f("ix_signing_events_action_at"), table_name="signing_events")
    op.drop_table("signing_events")
