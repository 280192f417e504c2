{#- Incremental gold: a run reads only the silver partitions it loads (its partition range, passed by the gold
    asset as the vars run_start / run_end), and a row already known from an earlier file is never taken again.
    `dbt build --full-refresh` (or the asset's full_refresh config) rebuilds every model from all of silver, and
    gives the same tables. Without the vars (dbt run by hand) an incremental run merges all of silver. -#}

{% macro in_run_partitions(column) -%}
    {%- if is_incremental() and var('run_start', none) -%}
        {{ column }} between '{{ var("run_start") }}' and '{{ var("run_end") }}'
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}


{#- Rows of `alias` whose key gold already holds from an earlier file are dropped: the first copy, by the day its
    file arrived, is the one kept (a late re-send never replaces it). A copy from the same or an earlier file
    (a re-run, or a backfill run out of order) goes through and the merge replaces the row, as a full rebuild
    would pick it. -#}
{% macro first_arrival_join(alias, keys) -%}
    {%- if is_incremental() %}
    left join {{ this }} as known
        on {% for key in keys %}known.{{ key[1] }} = {{ alias }}.{{ key[0] }} and {% endfor -%}
        known.available_date < {{ alias }}._partition_date
    {%- endif %}
{%- endmacro %}


{% macro not_known_earlier(keys) -%}
    {%- if is_incremental() -%}
        known.{{ keys[0][1] }} is null
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}
