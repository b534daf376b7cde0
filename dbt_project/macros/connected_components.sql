{#- Connected components of an undirected graph by min-label propagation with pointer
    jumping, iterated until no label changes (a handful of rounds on identity graphs: each
    round at least halves the distance to the component's smallest node). Set-based: each
    round is a join over all edges, so it scales with the engine, not with Python.

    nodes_sql: select returning node_id; edges_sql: select returning (src, dst).
    Work tables live in the `identity_work` schema of the working database. -#}
{% macro connected_components(nodes_sql, edges_sql, max_rounds=50) %}
    {#- only when building: compiling (docs, linting) must not touch the database -#}
    {%- if execute and flags.WHICH in ('run', 'build') -%}
        {%- set s = 'identity_work' -%}
        {% do run_query('create schema if not exists ' ~ s) %}
        {% do replace_work_table(s ~ '.cc_edges',
            'select src, dst from (' ~ edges_sql ~ ') e where src <> dst '
            ~ 'union select dst, src from (' ~ edges_sql ~ ') e where src <> dst'
        ) %}
        {% do replace_work_table(s ~ '.cc_labels',
            'select distinct node_id, node_id as label from (' ~ nodes_sql ~ ') n'
        ) %}
        {%- set state = namespace(converged=false, rounds=0) -%}
        {%- for round in range(max_rounds) -%}
            {%- if not state.converged -%}
                {#- 1. take the smallest label among yourself and your neighbours -#}
                {% do replace_work_table(s ~ '.cc_step',
                    'select l.node_id, least(l.label, coalesce(min(n.label), l.label)) as label '
                    ~ 'from ' ~ s ~ '.cc_labels l '
                    ~ 'left join ' ~ s ~ '.cc_edges e on e.src = l.node_id '
                    ~ 'left join ' ~ s ~ '.cc_labels n on n.node_id = e.dst '
                    ~ 'group by l.node_id, l.label'
                ) %}
                {#- 2. pointer jumping: adopt your label's label -#}
                {% do replace_work_table(s ~ '.cc_next',
                    'select a.node_id, least(a.label, coalesce(b.label, a.label)) as label '
                    ~ 'from ' ~ s ~ '.cc_step a left join ' ~ s ~ '.cc_step b on b.node_id = a.label'
                ) %}
                {%- set changed = run_query(
                    'select count(*) from ' ~ s ~ '.cc_next a join ' ~ s ~ '.cc_labels b '
                    ~ 'on a.node_id = b.node_id where a.label <> b.label'
                ).columns[0].values()[0] -%}
                {% do replace_work_table(s ~ '.cc_labels', 'select * from ' ~ s ~ '.cc_next') %}
                {%- set state.rounds = state.rounds + 1 -%}
                {%- if changed == 0 -%}{%- set state.converged = true -%}{%- endif -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if not state.converged -%}
            {{ exceptions.raise_compiler_error(
                'identity graph: connected components did not converge in ' ~ max_rounds ~ ' rounds') }}
        {%- endif -%}
        {{ log('identity graph: components converged in ' ~ state.rounds ~ ' rounds', info=true) }}
    {%- endif -%}
    select node_id, label from identity_work.cc_labels
{% endmacro %}
