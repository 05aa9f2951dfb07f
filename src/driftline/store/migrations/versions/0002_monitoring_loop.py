"""Monitoring and the closed loop: window buckets, reports, shared state, leases, shadow
predictions, alerts.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JsonType = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "window_buckets",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("worker_id", sa.String(128), nullable=False),
        sa.Column("bucket_start", sa.Double(), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(16), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("payload", JsonType, nullable=False),
        sa.Column("updated_ts", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_window_buckets"),
        sa.UniqueConstraint(
            "worker_id",
            "bucket_start",
            "model_version",
            "variant",
            name="uq_window_buckets_worker_id_bucket_start_model_version_variant",
        ),
    )
    op.create_index("ix_window_buckets_bucket_start", "window_buckets", ["bucket_start"])
    op.create_table(
        "reports",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.Double(), nullable=False),
        sa.Column("window_end", sa.Double(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("body", JsonType, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
    )
    op.create_index("ix_reports_ts", "reports", ["ts"])
    op.create_table(
        "state",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", JsonType, nullable=False),
        sa.Column("updated_ts", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_state"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_ts", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )
    op.create_table(
        "shadow_predictions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("prediction", sa.String(256), nullable=True),
        sa.Column("probabilities", JsonType, nullable=False),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("agrees", sa.Boolean(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_shadow_predictions"),
        sa.UniqueConstraint(
            "request_id", "model_version", name="uq_shadow_predictions_request_id_model_version"
        ),
    )
    op.create_index("ix_shadow_predictions_ts", "shadow_predictions", ["ts"])
    op.create_table(
        "alerts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("labels", JsonType, nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("starts_at", sa.Double(), nullable=False),
        sa.Column("ends_at", sa.Double(), nullable=True),
        sa.Column("notified", JsonType, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_fingerprint", "alerts", ["fingerprint"])
    op.create_index("ix_alerts_status", "alerts", ["status"])
    op.create_index("ix_alerts_starts_at", "alerts", ["starts_at"])


def downgrade() -> None:
    for table in ("alerts", "shadow_predictions", "leases", "state", "reports", "window_buckets"):
        op.drop_table(table)
