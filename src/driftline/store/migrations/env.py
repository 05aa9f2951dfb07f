"""Alembic environment: runs on the connection driftline hands over (see store/engine.py)."""

from __future__ import annotations

from alembic import context

from driftline.store.tables import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - driftline always passes a connection
    raise RuntimeError("run migrations through driftline.store.upgrade(engine)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
