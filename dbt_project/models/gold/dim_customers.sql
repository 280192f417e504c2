-- Current attributes of every customer, with the date they churned (their cancel event), if they did.
-- Incremental: a run recomputes only the customers it touched (a new version or a cancel that arrived in
-- its partitions) and merges them on customer_id.
{{ config(materialized='incremental', incremental_strategy='merge', unique_key='customer_id') }}

with

{% if is_incremental() %}
touched as (
    select customer_id from {{ ref('customer_history') }}
    where {{ in_run_partitions('available_date') }}
    union
    select customer_id from {{ ref('fct_billing_events') }}
    where event_type = 'cancel' and {{ in_run_partitions('available_date') }}
),
{% endif %}

churn as (
    select customer_id, min(event_date) as churn_date
    from {{ ref('fct_billing_events') }}
    where event_type = 'cancel'
    group by customer_id
)

select
    h.customer_id, h.signup_date, h.plan, h.region, h.age, h.acquisition_channel, h.monthly_fee,
    h.valid_from as last_updated_at, c.churn_date
from {{ ref('customer_history') }} as h
left join churn as c on h.customer_id = c.customer_id
{% if is_incremental() %}
left semi join touched as t on h.customer_id = t.customer_id
{% endif %}
where h.valid_to is null
