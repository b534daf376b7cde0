{#- On Spark the raw and landing sources are Parquet exports of the DuckDB landing views
    (var spark_source_dir/<source>/<table>.parquet): the landing step's file readers are
    DuckDB's. A Spark deployment would define external tables over the raw files instead. -#}
{% macro source(source_name, table_name) -%}
    {%- set relation = builtins.source(source_name, table_name) -%}
    {%- if target.type == 'spark' and source_name in ('raw', 'landing') -%}
        {%- do return('parquet.`' ~ var('spark_source_dir') ~ '/' ~ source_name ~ '/'
                      ~ table_name ~ '.parquet`') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}
