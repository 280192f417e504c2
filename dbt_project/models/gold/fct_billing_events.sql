-- Billing events, each once, with the day it happened and the day it arrived.
with ranked as (
    select
        *,
        row_number() over (partition by event_id order by _partition_date, _source_row) as copy_number
    from {{ source('silver', 'billing_events') }}
)

select
    event_id, customer_id, event_ts, to_date(event_ts) as event_date, event_type, amount, payment_method,
    _partition_date as available_date
from ranked
where copy_number = 1
