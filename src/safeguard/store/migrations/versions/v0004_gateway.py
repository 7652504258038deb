"""Registry gateway: pull log, audit events, pending grace tags, referrers index, quarantine
journal, findings.

Revision ID: 0004_gateway
Revises: 0003_policy
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_gateway"
down_revision = "0003_policy"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column[int]:
    return sa.Column("id", _ID, autoincrement=True, nullable=False)


def _at(name: str = "at", nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "gateway_pulls",
        _id(),
        _at(),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("digest", sa.String(200), nullable=True),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("identity", sa.String(255), nullable=False),
        sa.Column("user_agent", sa.String(255), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("quarantined", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_pulls")),
    )
    op.create_index(op.f("ix_gateway_pulls_digest_at"), "gateway_pulls", ["digest", "at"])
    op.create_index(
        op.f("ix_gateway_pulls_repository_digest_at"),
        "gateway_pulls",
        ["repository", "digest", "at"],
    )
    op.create_table(
        "gateway_audit",
        _id(),
        _at(),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("tag", sa.String(128), nullable=True),
        sa.Column("digest", sa.String(200), nullable=True),
        sa.Column("old_digest", sa.String(200), nullable=True),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("identity", sa.String(255), nullable=False),
        sa.Column("mode", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_audit")),
    )
    op.create_index(op.f("ix_gateway_audit_repository_at"), "gateway_audit", ["repository", "at"])
    op.create_table(
        "gateway_pending",
        _id(),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("tag", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(200), nullable=False),
        sa.Column("media_type", sa.String(255), nullable=False),
        _at("created_at"),
        _at("deadline"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("identity", sa.String(255), nullable=False),
        _at("resolved_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_pending")),
    )
    for columns in (["repository", "digest"], ["repository", "tag"], ["state", "deadline"]):
        op.create_index(op.f(f"ix_gateway_pending_{'_'.join(columns)}"), "gateway_pending", columns)
    op.create_table(
        "gateway_referrers",
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("digest", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("artifact_type", sa.String(255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=True),
        _at("created_at"),
        sa.PrimaryKeyConstraint("repository", "digest", name=op.f("pk_gateway_referrers")),
    )
    op.create_index(
        op.f("ix_gateway_referrers_repository_subject"),
        "gateway_referrers",
        ["repository", "subject"],
    )
    op.create_table(
        "gateway_quarantine",
        _id(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source_repository", sa.String(255), nullable=False),
        sa.Column("source_tag", sa.String(128), nullable=True),
        sa.Column("digest", sa.String(200), nullable=False),
        sa.Column("target_repository", sa.String(255), nullable=False),
        _at("until"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("serve", sa.Boolean(), nullable=False),
        sa.Column("referrers", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _at("created_at"),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_quarantine")),
    )
    op.create_index(
        op.f("ix_gateway_quarantine_source_repository_digest"),
        "gateway_quarantine",
        ["source_repository", "digest"],
    )
    op.create_index(op.f("ix_gateway_quarantine_state"), "gateway_quarantine", ["state"])
    op.create_table(
        "gateway_findings",
        _id(),
        _at(),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("tag", sa.String(128), nullable=True),
        sa.Column("digest", sa.String(200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_findings")),
    )


def downgrade() -> None:
    op.drop_table("gateway_findings")
    op.drop_index(op.f("ix_gateway_quarantine_state"), table_name="gateway_quarantine")
    op.drop_index(
        op.f("ix_gateway_quarantine_source_repository_digest"), table_name="gateway_quarantine"
    )
    op.drop_table("gateway_quarantine")
    op.drop_index(op.f("ix_gateway_referrers_repository_subject"), table_name="gateway_referrers")
    op.drop_table("gateway_referrers")
    for columns in (["repository", "digest"], ["repository", "tag"], ["state", "deadline"]):
        op.drop_index(op.f(f"ix_gateway_pending_{'_'.join(columns)}"), table_name="gateway_pending")
    op.drop_table("gateway_pending")
    op.drop_index(op.f("ix_gateway_audit_repository_at"), table_name="gateway_audit")
    op.drop_table("gateway_audit")
    op.drop_index(op.f("ix_gateway_pulls_repository_digest_at"), table_name="gateway_pulls")
    op.drop_index(op.f("ix_gateway_pulls_digest_at"), table_name="gateway_pulls")
    op.drop_table("gateway_pulls")
