{#- Incremental builds of int_churn_features (DuckDB).

    Snapshot dates lie on a fixed calendar (every `churn_snapshot_every_days` days counted
    from 1970-01-01), plus the as-of date for scoring, so a past snapshot keeps its date
    while the as-of date moves on. A past snapshot's features only read data on or before
    it, so a daily run keeps the rows of people whose inputs did not change and rebuilds:
      * every row of the people in int_churn_changed_people (their lifecycle days up to
        the last build's as-of date or their milestones, their CRM profile, or their
        treatment touches changed; a lifecycle change after that date reaches no kept
        snapshot, nor the label window of one, which ended by then or is still open);
      * for everyone, the snapshots whose row changes with the as-of date: the scoring
        snapshot, calendar dates on or after the last build's as-of date (the old scoring
        date becomes a past snapshot), and snapshots whose label window ended in the days
        the as-of date moved over (their label was unknown and is known now);
    and drops the snapshots that fell out of the training window. Everyone is rebuilt on the
    first build, a full refresh, a changed var or model (the fingerprint), when the
    lifecycle chain rebuilt everyone, or when the last build of int_churn_features was not
    on top of the chain's last complete build (a failed or skipped build in between). -#}

{% macro churn_features_state(part) -%}
    {{ intermediate_relation('int_churn_features_' ~ part) }}
{%- endmacro %}

{#- The snapshot dates of the as-of date: the as-of date, and the calendar dates before it
    back to `churn_training_snapshots` labelled ones (a label needs `churn_horizon_days`
    after the snapshot). -#}
{% macro churn_snapshot_dates() -%}
    {%- set every = var('churn_snapshot_every_days') -%}
    {%- set horizon = var('churn_horizon_days') -%}
    {%- set newest_labelled -%}
        ({{ as_of_date() }} - {{ horizon }}
        - cast(({{ as_of_date() }} - {{ horizon }} - date '1970-01-01') % {{ every }} as integer))
    {%- endset -%}
    select {{ as_of_date() }} as snapshot_date
    union
    select {{ newest_labelled }} + cast(k * {{ every }} as integer) as snapshot_date
    from (
        select unnest(range({{ 1 - var('churn_training_snapshots') }}, {{ horizon // every + 2 }})) as k
    ) as offsets
    where {{ newest_labelled }} + cast(k * {{ every }} as integer) < {{ as_of_date() }}
{%- endmacro %}

{#- The snapshot dates whose rows a daily run keeps for the people who did not change:
    before the last build's as-of date, with a label that was known then or is still
    unknown now. -#}
{% macro churn_kept_snapshot_dates() -%}
    {%- set horizon = var('churn_horizon_days') -%}
    {%- set built_as_of = '(select built.as_of_date from ' ~ churn_features_state('state') ~ ' as built)' -%}
    select dates.snapshot_date
    from ({{ churn_snapshot_dates() }}) as dates
    where
        dates.snapshot_date < {{ built_as_of }}
        and (
            dates.snapshot_date + {{ horizon }} <= {{ built_as_of }}
            or dates.snapshot_date + {{ horizon }} > {{ as_of_date() }}
        )
{%- endmacro %}

{#- True when this build rebuilds only some rows of int_churn_features. -#}
{% macro churn_features_daily() -%}
    {{ return(target.type == 'duckdb' and is_incremental()
              and not everyone_changed('int_churn_changed_people')) }}
{%- endmacro %}

{#- What, besides the data, shapes int_churn_features' rows (the lifecycle vars are the
    chain's: a change there rebuilds everyone through int_stage_changed_people). -#}
{% macro churn_features_fingerprint() -%}
    {{ return(fingerprint([
        var('churn_snapshot_every_days'), var('churn_horizon_days'),
        var('churn_training_snapshots'), var('lifecycle_subscription_period_days'),
        var('lifecycle_subscription_grace_days'), var('business_timezone'),
    ], ['int_churn_changed_people', 'int_churn_features'])) }}
{%- endmacro %}

{#- Why int_churn_features must rebuild everyone, or nothing. Asked by
    int_churn_changed_people, which runs after the lifecycle chain completed. -#}
{% macro churn_features_rebuild_reason() -%}
    {{ return(after_chain_rebuild_reason(
        ['intermediate.int_churn_features', 'intermediate.int_churn_features_state',
         'intermediate.int_churn_features_profiles', 'intermediate.int_churn_features_touches'],
        'int_churn_features_state', churn_features_fingerprint())) }}
{%- endmacro %}

{#- Why a model built on top of the lifecycle chain's build of this invocation (its people
    from int_stage_changed_people, its days from its last as-of date) rebuilds everyone, or
    '': one of its `tables` missing (a first build, a full refresh), the chain rebuilt
    everyone, its state table (as_of_date, fingerprint) is not of this `fingerprint`, or its
    last build was not on top of the chain's last build (a failed or skipped build between:
    the chain's state keeps the as-of date of its build before this one). -#}
{% macro after_chain_rebuild_reason(tables, state_table, fingerprint) -%}
    {%- set first = first_build_reason(tables) -%}
    {%- if first -%}
        {{ return(first) }}
    {%- endif -%}
    {%- if list_says_everyone('int_stage_changed_people') -%}
        {{ return('the lifecycle chain rebuilt everyone') }}
    {%- endif -%}
    {%- set built = state_row(state_table) -%}
    {%- set chain = state_row('int_person_chain_state') -%}
    {%- if built is none or built['fingerprint'] != fingerprint -%}
        {{ return('a var or model changed') }}
    {%- endif -%}
    {%- if chain is none or chain['history_built_by'] != invocation_id
        or built['as_of_date'] != chain['previous_as_of_date'] -%}
        {{ return('its last build was not on top of the lifecycle chain\'s last build') }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- For a per-person model built on top of the chain's build of this invocation that adds
    the new days to its stored rows (int_person_cohort_masks, int_person_activity_summary):
    the as-of date of its last build as a date literal (DuckDB skips the older row groups
    of the activity by it), when this build only adds the new days and rebuilds the people
    whose whole history changed; none when it rebuilds everyone (`why`: its rebuild reason;
    `logged`: say it in dbt's log). -#}
{% macro after_chain_built_as_of(state_table, why, logged=false) -%}
    {%- if target.type != 'duckdb' or not execute or not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set reason = logged_rebuild_reason(why) if logged else why() -%}
    {%- if reason -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return("date '" ~ state_row(state_table)['as_of_date'] ~ "'") }}
{%- endmacro %}

{#- The people such a model builds from every day again. -#}
{% macro people_rebuilt_after_chain() -%}
    {{ rebuilt_people(ref('int_stage_changed_people'), whole_history=true) }}
{%- endmacro %}

{#- Such a model's activity: on a daily build two reads, the new days (DuckDB skips the
    older row groups by the constant) and every day of the rebuilt people; every day
    otherwise. -#}
{% macro activity_after_chain(built_as_of) -%}
    {%- if built_as_of %}
        select * from {{ ref('int_person_day_activity') }}
        where activity_date > {{ built_as_of }}
        union all
        select * from {{ ref('int_person_day_activity') }}
        where
            activity_date <= {{ built_as_of }}
            and user_key in ({{ people_rebuilt_after_chain() }})
    {%- else %}
        select * from {{ ref('int_person_day_activity') }}
    {%- endif %}
{%- endmacro %}

{#- Pre-hook of such a model: delete the rows built from every day again (every row when
    everyone is). -#}
{% macro forget_people_rebuilt_after_chain(built_as_of) -%}
    {%- if target.type == 'duckdb' and is_incremental() -%}
        delete from {{ this }}
        {%- if built_as_of %}
            where user_key in ({{ people_rebuilt_after_chain() }})
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook of such a model: what its next build checks it builds on. -#}
{% macro built_after_chain(state_table, fingerprint) -%}
    {%- if target.type == 'duckdb' -%}
        create or replace table {{ intermediate_relation(state_table) }} as
        select
            {{ as_of_date() }} as as_of_date,
            '{{ fingerprint }}' as fingerprint,
            '{{ invocation_id }}' as built_by
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- The rows a daily build rewrites: every row of a changed person, and everyone's rows at
    the snapshots it does not keep. -#}
{% macro churn_rebuilt_rows(user_column, day_column) -%}
    (
        {{ user_column }} in (select changed.user_key from {{ ref('int_churn_changed_people') }} as changed)
        or {{ day_column }} not in ({{ churn_kept_snapshot_dates() }})
    )
{%- endmacro %}

{#- What the key test of int_churn_features reads (get_where_subquery,
    `__rebuilt_churn_feature_rows__`): on a daily build the rows of the changed people and
    of every snapshot after the last build's as-of date less the label horizon (every
    snapshot a daily build writes lies there: the scoring one, the last build's and those
    whose label came due), and every row sharing a key with them; everything when the
    list of changed people says everyone or is not this build's. The rows left out were
    tested when they were written. The last build's as-of date is the lifecycle chain's
    previous one (a daily build checks that: after_chain_rebuild_reason). -#}
{% macro rebuilt_churn_feature_rows_filter() -%}
    {%- set list = daily_list('int_churn_changed_people') -%}
    {%- if list is none -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set chain = state_row('int_person_chain_state') -%}
    {%- if chain is none or chain['previous_as_of_date'] is none -%}
        {{ return('true') }}
    {%- endif -%}
    {{ return("(user_key in (select changed.user_key from " ~ list ~ " as changed)"
              ~ " or snapshot_date > date '" ~ chain['previous_as_of_date'] ~ "' - "
              ~ var('churn_horizon_days') ~ ")") }}
{%- endmacro %}

{#- Model filter of int_churn_features: the rows the pre-hook deleted (everyone else's kept
    snapshots are still there); every row on a full build. -#}
{% macro churn_rows_to_build(user_column, day_column) -%}
    {%- if churn_features_daily() -%}
        {{ churn_rebuilt_rows(user_column, day_column) }}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of int_churn_features: delete the rows about to be rebuilt and the snapshots
    that left the window (everything on a full build), but the last build's scoring rows
    when this build moves them on (the post-hook deletes those). -#}
{% macro forget_churn_feature_rows() -%}
    {%- if target.type == 'duckdb' and is_incremental() -%}
        delete from {{ this }}
        {%- if churn_features_daily() %}
            where {{ churn_rebuilt_rows('user_key', 'snapshot_date') }}
            {%- if churn_scoring_carried_from() %} and not is_scoring_snapshot{% endif %}
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook of int_churn_features: the state and snapshots the next build compares with
    (`moved_on_scoring_rows`: how many of the last build's scoring rows this build moved on,
    0 when it computed every row), and the last build's scoring rows go. -#}
{% macro churn_features_built() -%}
    {%- if target.type == 'duckdb' -%}
        create or replace table {{ churn_features_state('state') }} as
        select
            {{ as_of_date() }} as as_of_date,
            '{{ churn_features_fingerprint() }}' as fingerprint,
            '{{ invocation_id }}' as built_by,
            (
                select count(*) from {{ this }} as moved_on
                where
                    moved_on.is_scoring_snapshot and moved_on.snapshot_date < {{ as_of_date() }}
                    and moved_on.user_key not in (
                        select changed.user_key from {{ ref('int_churn_changed_people') }} as changed
                    )
            ) as moved_on_scoring_rows;
        delete from {{ this }}
        where is_scoring_snapshot and snapshot_date < {{ as_of_date() }};
        create or replace table {{ churn_features_state('profiles') }} as
        select user_key, {{ churn_profile_columns() | join(', ') }}
        from {{ ref('int_customer_profiles') }};
        create or replace table {{ churn_features_state('touches') }} as
        {{ churn_treatment_touches() }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- What int_churn_features reads of the CRM profile (and the snapshot keeps). -#}
{% macro churn_profile_columns() -%}
    {{ return(['acquisition_channel', 'country', 'gender', 'birth_year']) }}
{%- endmacro %}

{#- What int_churn_features reads of the campaign touches: treatment touches per person
    and day. -#}
{% macro churn_treatment_touches() -%}
    select
        user_key,
        sent_date,
        count(*) as touches
    from {{ ref('int_campaign_touches') }}
    where touch_group = 'treatment'
    group by user_key, sent_date
{%- endmacro %}

{#- The scoring snapshot moved on (DuckDB, daily). Features summed over windows of days
    before the snapshot (active days, sessions, orders, spend, tickets, events, treatment
    touches) are, for a person whose days up to the last build's as-of date did not change
    (not in int_churn_changed_people), the last build's scoring row plus the days entering
    each window minus the days leaving it: for a window (s - a, s - b] moved from t0 to t1,
    add (t0 - b, t1 - b] and take away (t0 - a, t1 - a]. That reads a few days of activity
    instead of 90 for everyone (the join and the sums over ~3.6M person-days took ~2.6 of
    the model's 5.4 s at a million people). The NPS average (a ratio) is summed again from
    the NPS answers of the window; every other feature comes from the snapshot day's stage,
    milestones and profile as on a full build. Up to `churn_carry_max_days` days: beyond
    that the moved days outnumber the window's. The last build's scoring rows stay until
    the post-hook (they are what this build reads). -#}
{% macro churn_carry_max_days() -%}
    {{ return(7) }}
{%- endmacro %}

{#- The days every activity window reaches back. -#}
{% macro churn_activity_window_days() -%}
    {{ return(90) }}
{%- endmacro %}

{#- The features summed over a window (s - start, s - end] of activity days before the
    snapshot s: a count of the days meeting `count_if`, or a sum of `sum`; in the table's
    column order (nps_avg_90 comes before subscription_payments_recent). -#}
{% macro churn_windowed_features() -%}
    {%- set recent = var('lifecycle_subscription_period_days') + var('lifecycle_subscription_grace_days') -%}
    {%- set features = [] -%}
    {%- for days in [7, 30, 90] -%}
        {%- do features.append({'name': 'active_days_' ~ days, 'count_if': 'a.is_active', 'start': days, 'end': 0}) -%}
    {%- endfor -%}
    {%- do features.append({'name': 'active_days_prev_7', 'count_if': 'a.is_active', 'start': 14, 'end': 7}) -%}
    {%- do features.append({'name': 'active_days_prev_30', 'count_if': 'a.is_active', 'start': 60, 'end': 30}) -%}
    {%- for name, value, start, end in [
        ('sessions_7', 'a.sessions', 7, 0), ('sessions_30', 'a.sessions', 30, 0),
        ('orders_30', 'a.orders', 30, 0), ('orders_90', 'a.orders', 90, 0),
        ('spend_30', 'a.revenue', 30, 0), ('spend_prev_30', 'a.revenue', 60, 30),
        ('spend_90', 'a.revenue', 90, 0),
        ('support_tickets_30', 'a.support_tickets', 30, 0),
        ('support_tickets_90', 'a.support_tickets', 90, 0),
        ('subscription_payments_recent', 'a.subscription_payments', recent, 0),
        ('subscription_cancels_90', 'a.subscription_cancels', 90, 0),
        ('app_events_90', 'a.app_events', 90, 0), ('web_events_90', 'a.web_events', 90, 0),
        ('mini_program_events_90', 'a.mini_program_events', 90, 0),
        ('store_orders_90', 'a.store_orders', 90, 0), ('events_90', 'a.events', 90, 0),
    ] -%}
        {%- do features.append({'name': name, 'sum': value, 'start': start, 'end': end}) -%}
    {%- endfor -%}
    {{ return(features) }}
{%- endmacro %}

{#- `day` within (snapshot - start, snapshot - end]; the join has already kept the days of
    the whole window, (snapshot - 90, snapshot]. -#}
{% macro churn_in_window(day, snapshot, start, end) -%}
    {%- set bounds = [] -%}
    {%- if start < churn_activity_window_days() -%}
        {%- do bounds.append(day ~ ' > ' ~ snapshot ~ ' - ' ~ start) -%}
    {%- endif -%}
    {%- if end > 0 -%}
        {%- do bounds.append(day ~ ' <= ' ~ snapshot ~ ' - ' ~ end) -%}
    {%- endif -%}
    {{ return(bounds | join(' and ')) }}
{%- endmacro %}

{#- A windowed feature of a snapshot, from its window's activity rows `a`. -#}
{% macro churn_window_value(feature, snapshot) -%}
    {%- set within = churn_in_window('a.activity_date', snapshot, feature.start, feature.end) -%}
    {%- if feature.count_if -%}
        count(*) filter (where {{ feature.count_if }}{{ ' and ' ~ within if within }})
    {%- elif within -%}
        coalesce(sum({{ feature.sum }}) filter (where {{ within }}), 0)
    {%- else -%}
        coalesce(sum({{ feature.sum }}), 0)
    {%- endif -%}
{%- endmacro %}

{#- `day` among the days a window `offset` days before the snapshot moves over from t0 to
    t1: (t0 - offset, t1 - offset]. -#}
{% macro churn_moved_range(day, t0, t1, offset) -%}
    ({{ day }} > {{ t0 }} - {{ offset }} and {{ day }} <= {{ t1 }} - {{ offset }})
{%- endmacro %}

{#- `day` is one a window's start or end moves over from `t0` (a date literal) to the as-of
    date (default: of every windowed feature), as a list of constants. -#}
{% macro churn_moved_days(day, t0, offsets=none) -%}
    {%- set found = [] -%}
    {%- if offsets is none -%}
        {%- for feature in churn_windowed_features() -%}
            {%- do found.extend([feature.start, feature.end]) -%}
        {%- endfor -%}
    {%- else -%}
        {%- do found.extend(offsets) -%}
    {%- endif -%}
    {%- set date = modules.datetime.date -%}
    {%- set start = date.fromisoformat(t0[6:16]) -%}
    {%- set moved = (date.fromisoformat(var('as_of_date')) - start).days -%}
    {%- set days = [] -%}
    {%- for offset in found | unique | sort -%}
        {%- for step in range(1, moved + 1) -%}
            {%- do days.append("date '" ~ (start + modules.datetime.timedelta(days=step - offset)) ~ "'") -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ day }} in ({{ days | unique | join(', ') }})
{%- endmacro %}

{#- A windowed feature's change from t0 to t1, from the activity rows `a` of the moved days:
    each row counts +1 on a day entering the window and -1 on a day leaving it (a sum of
    signed rows, not two filtered sums: half the time over ~250k people a day). -#}
{% macro churn_window_change(feature, t0, t1) -%}
    {%- set sign -%}
        (cast({{ churn_moved_range('a.activity_date', t0, t1, feature.end) }} as integer)
        - cast({{ churn_moved_range('a.activity_date', t0, t1, feature.start) }} as integer))
    {%- endset -%}
    {%- if feature.count_if -%}
        cast(sum(cast({{ feature.count_if }} as integer) * {{ sign }}) as bigint)
    {%- else -%}
        coalesce(sum({{ feature.sum }} * {{ sign }}), 0)
    {%- endif -%}
{%- endmacro %}

{#- The last build's as-of date (a date literal) when this build moves the scoring rows of
    the unchanged people on from it (see above); none when it computes every row it
    builds. `logged`: say which in dbt's log. -#}
{% macro churn_scoring_carried_from(logged=false) -%}
    {%- if not execute or not churn_features_daily() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set built = state_row('int_churn_features_state') -%}
    {%- if built is none or built['as_of_date'] is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set built_as_of = (built['as_of_date'] | string)[:10] -%}
    {%- set days = (modules.datetime.date.fromisoformat(var('as_of_date'))
                    - modules.datetime.date.fromisoformat(built_as_of)).days -%}
    {%- set carried = days >= 1 and days <= churn_carry_max_days() -%}
    {%- if logged -%}
        {%- set moved = days ~ (' day' if days == 1 else ' days') -%}
        {{ log(this.name ~ ": " ~ ("the scoring rows of the unchanged people moved on " ~ moved
                                   ~ " from " ~ built_as_of if carried else
                                   "every scoring row computed (the as-of date moved "
                                   ~ moved ~ ")"), info=true) }}
    {%- endif -%}
    {{ return("date '" ~ built_as_of ~ "'" if carried else none) }}
{%- endmacro %}
