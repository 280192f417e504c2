-- Daily usage per customer. Late rows are in silver under the day they arrived; an event counted once,
-- under its event_date, with available_date = the day it arrived (what a model could have known when).
with ranked as (
    select
        *,
        row_number() over (partition by event_id order by _partition_date, _source_row) as copy_number
    from {{ source('silver', 'usage_events') }}
)

select
    event_id, customer_id, event_date, sessions, minutes_used, support_tickets, device,
    _partition_date as available_date
from ranked
where copy_number = 1
