-- Billing events, each once, with the day it happened and the day it arrived.
-- Incremental like fct_usage_daily: merged on event_id, partitioned by event_date.
{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key='event_id',
    partition_by=['event_date'],
) }}

with ranked as (
    select
        *,
        row_number() over (partition by event_id order by _partition_date, _source_row) as copy_number
    from {{ source('silver', 'billing_events') }}
    where {{ in_run_partitions('_partition_date') }}
)

select
    r.event_id, r.customer_id, r.event_ts, to_date(r.event_ts) as event_date, r.event_type, r.amount,
    r.payment_method, r._partition_date as available_date
from ranked as r
{{ first_arrival_join('r', [('event_id', 'event_id')]) }}
where r.copy_number = 1 and {{ not_known_earlier([('event_id', 'event_id')]) }}
