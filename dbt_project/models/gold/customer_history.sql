-- Every version of a customer's attributes with the interval it was valid (SCD type 2), so features can
-- read the attributes as they were on any as-of date. A later file can repeat a version: keep the first.
-- Incremental: a run takes the new versions from its own silver partitions, re-reads the versions gold already
-- holds for those customers only, and merges on (customer_id, valid_from): a new version closes the one
-- before it (valid_to), as a full rebuild would.
{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key=['customer_id', 'valid_from'],
) }}

with arrived as (
    select
        customer_id, signup_date, plan, region, age, acquisition_channel, monthly_fee, updated_at,
        _partition_date,
        row_number() over (
            partition by customer_id, updated_at order by _partition_date, _source_row
        ) as copy_number
    from {{ source('silver', 'customers') }}
    where {{ in_run_partitions('_partition_date') }}
),

new_versions as (
    select
        a.customer_id, a.signup_date, a.plan, a.region, a.age, a.acquisition_channel, a.monthly_fee,
        a.updated_at as valid_from, a._partition_date as available_date
    from arrived as a
    {{ first_arrival_join('a', [('customer_id', 'customer_id'), ('updated_at', 'valid_from')]) }}
    where a.copy_number = 1 and {{ not_known_earlier([('customer_id', 'customer_id')]) }}
),

versions as (
    select * from new_versions
    {% if is_incremental() %}
    union all
    -- The versions gold already holds of the customers this run touches (and no others), so the interval of
    -- the version before a new one is closed across the run boundary.
    select
        h.customer_id, h.signup_date, h.plan, h.region, h.age, h.acquisition_channel, h.monthly_fee,
        h.valid_from, h.available_date
    from {{ this }} as h
    left semi join (select distinct customer_id from new_versions) as touched
        on h.customer_id = touched.customer_id
    left anti join new_versions as n
        on h.customer_id = n.customer_id and h.valid_from = n.valid_from
    {% endif %}
)

select
    customer_id, signup_date, plan, region, age, acquisition_channel, monthly_fee, valid_from,
    lead(valid_from) over (partition by customer_id order by valid_from) as valid_to,
    available_date
from versions
