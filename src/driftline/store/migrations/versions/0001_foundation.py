"""Foundation: predictions, labels, alias history, audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JsonType = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("features", JsonType, nullable=False),
        sa.Column("prediction", sa.String(256), nullable=False),
        sa.Column("probabilities", JsonType, nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
        sa.UniqueConstraint("request_id", name="uq_predictions_request_id"),
    )
    op.create_index("ix_predictions_ts", "predictions", ["ts"])
    op.create_index("ix_predictions_model_version", "predictions", ["model_version"])
    op.create_table(
        "labels",
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("label", sa.String(256), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_labels"),
    )
    op.create_index("ix_labels_ts", "labels", ["ts"])
    op.create_table(
        "alias_history",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alias_history"),
    )
    op.create_index("ix_alias_history_ts", "alias_history", ["ts"])
    op.create_index("ix_alias_history_model_alias", "alias_history", ["model_name", "alias"])
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", JsonType, nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_ts", "audit_log", ["ts"])
    op.create_index("ix_audit_log_kind", "audit_log", ["kind"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("alias_history")
    op.drop_table("labels")
    op.drop_table("predictions")
