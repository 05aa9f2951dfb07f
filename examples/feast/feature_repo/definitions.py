"""Feature definitions of driftline's Feast example: one entity, one feature view.

``feast apply`` in this folder registers them; ``generate_data.py`` writes the Parquet file
they read.
"""

from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.INT64,
    description="A bank customer.",
)

customer_stats_source = FileSource(
    name="customer_stats_source",
    path="data/customer_stats.parquet",
    timestamp_field="event_timestamp",
)

customer_stats = FeatureView(
    name="customer_stats",
    entities=[customer],
    ttl=timedelta(days=90),
    schema=[
        Field(name="txn_count_7d", dtype=Int64, description="Transactions in the last 7 days."),
        Field(name="avg_amount_7d", dtype=Float64, description="Mean amount, last 7 days."),
        Field(name="tickets_30d", dtype=Int64, description="Support tickets, last 30 days."),
    ],
    online=True,
    source=customer_stats_source,
)
