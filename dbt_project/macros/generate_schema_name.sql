{#- Schemas are the layer names themselves (staging, intermediate, marts): the contract
    promises BI a schema called `marts`, not `main_marts`. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
