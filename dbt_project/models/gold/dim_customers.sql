-- Current attributes of every customer, with the date they churned (their cancel event), if they did.
with churn as (
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
where h.valid_to is null
