-- Every version of a customer's attributes with the interval it was valid (SCD type 2), so features can
-- read the attributes as they were on any as-of date. A later file can repeat a version: keep the first.
with versions as (
    select
        customer_id, signup_date, plan, region, age, acquisition_channel, monthly_fee, updated_at,
        _partition_date as available_date,
        row_number() over (
            partition by customer_id, updated_at order by _partition_date, _source_row
        ) as copy_number
    from {{ source('silver', 'customers') }}
)

select
    customer_id, signup_date, plan, region, age, acquisition_channel, monthly_fee,
    updated_at as valid_from,
    lead(updated_at) over (partition by customer_id order by updated_at) as valid_to,
    available_date
from versions
where copy_number = 1
