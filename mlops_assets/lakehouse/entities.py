"""Declarative specs of the source entities: one source of truth for parsing, quarantine rules and
the pandera schemas that guard silver.

Each column says its type, whether it is required, and its allowed values or range. The silver transform
turns every broken constraint into a named rule on the row; pandera checks the same constraints again on
what silver kept.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    dtype: str  # "string" | "int" | "double" | "date" | "timestamp"
    required: bool = False
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    pattern: str | None = None


@dataclass(frozen=True)
class EntitySpec:
    name: str
    file_name: str
    file_format: str  # "csv" | "json"
    key: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]
    event_date_column: str | None = None
    max_lateness_days: int = 7
    description: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


CUSTOMERS = EntitySpec(
    name="customers",
    file_name="customers.csv",
    file_format="csv",
    key=("customer_id", "updated_at"),
    description="Customer sign-ups and attribute changes (plan upgrades/downgrades), one file a day.",
    columns=(
        ColumnSpec("customer_id", "string", required=True, pattern=r"^C[0-9]{6}$"),
        ColumnSpec("signup_date", "date", required=True),
        ColumnSpec("plan", "string", required=True, allowed=("basic", "standard", "premium")),
        ColumnSpec("region", "string", allowed=("NA", "EU", "APAC", "LATAM")),
        ColumnSpec("age", "int", min_value=18, max_value=100),
        ColumnSpec(
            "acquisition_channel", "string", allowed=("organic", "paid_search", "referral", "partner")
        ),
        ColumnSpec("monthly_fee", "double", min_value=0, max_value=1000),
        ColumnSpec("updated_at", "timestamp", required=True),
    ),
)

USAGE_EVENTS = EntitySpec(
    name="usage_events",
    file_name="usage_events.jsonl",
    file_format="json",
    key=("event_id",),
    event_date_column="event_date",
    description="Daily product usage per active customer (JSON lines); some rows arrive days late.",
    columns=(
        ColumnSpec("event_id", "string", required=True),
        ColumnSpec("customer_id", "string", required=True, pattern=r"^C[0-9]{6}$"),
        ColumnSpec("event_date", "date", required=True),
        ColumnSpec("sessions", "int", min_value=0, max_value=1000),
        ColumnSpec("minutes_used", "double", min_value=0, max_value=1440),
        ColumnSpec("support_tickets", "int", min_value=0, max_value=100),
        ColumnSpec("device", "string", allowed=("mobile", "desktop", "tv", "tablet")),
    ),
)

BILLING_EVENTS = EntitySpec(
    name="billing_events",
    file_name="billing_events.csv",
    file_format="csv",
    key=("event_id",),
    event_date_column="event_ts",
    description="Charges, payment failures, refunds and cancellations (a cancel is a churn).",
    columns=(
        ColumnSpec("event_id", "string", required=True),
        ColumnSpec("customer_id", "string", required=True, pattern=r"^C[0-9]{6}$"),
        ColumnSpec("event_ts", "timestamp", required=True),
        ColumnSpec(
            "event_type", "string", required=True, allowed=("charge", "payment_failed", "refund", "cancel")
        ),
        ColumnSpec("amount", "double", min_value=0, max_value=10000),
        ColumnSpec("payment_method", "string", allowed=("card", "paypal", "bank_transfer")),
    ),
)

ENTITIES: dict[str, EntitySpec] = {e.name: e for e in (CUSTOMERS, USAGE_EVENTS, BILLING_EVENTS)}
