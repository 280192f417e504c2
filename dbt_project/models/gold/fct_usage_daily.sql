-- Daily usage per customer. Late rows are in silver under the day they arrived; an event counted once,
-- under its event_date, with available_date = the day it arrived (what a model could have known when).
-- Incremental: each run merges only its own silver partitions on event_id (macros/incremental_gold.sql);
-- partitioned by event_date so the feature windows read only the days they need.
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
    from {{ source('silver', 'usage_events') }}
    where {{ in_run_partitions('_partition_date') }}
)

select
    r.event_id, r.customer_id, r.event_date, r.sessions, r.minutes_used, r.support_tickets, r.device,
    r._partition_date as available_date
from ranked as r
{{ first_arrival_join('r', [('event_id', 'event_id')]) }}
where r.copy_number = 1 and {{ not_known_earlier([('event_id', 'event_id')]) }}
