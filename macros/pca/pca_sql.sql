{#- The calls, exactly as MADlib documents them (same text for MADlib and madlib_compat). -#}

{% macro pca_sparse_train_sql(backend_schema, source_table, out_table, row_dim, col_dim, components_param, summary_table) %}
    {%- set sql -%}
select {{ adapter.quote(backend_schema) }}.pca_sparse_train(
    {{ sql_string_literal(source_table) }},
    {{ sql_string_literal(out_table) }},
    'row_id',
    'col_id',
    'value',
    {{ row_dim | int }},
    {{ col_dim | int }},
    {{ components_param }},
    null,
    0,
    false,
    {{ sql_string_literal(summary_table) }}
)
    {%- endset -%}
    {{ return(sql) }}
{% endmacro %}


{% macro pca_sparse_project_sql(backend_schema, source_table, pc_table, out_table, row_dim, col_dim, residual_table, summary_table) %}
    {%- set sql -%}
select {{ adapter.quote(backend_schema) }}.pca_sparse_project(
    {{ sql_string_literal(source_table) }},
    {{ sql_string_literal(pc_table) }},
    {{ sql_string_literal(out_table) }},
    'row_id',
    'col_id',
    'value',
    {{ row_dim | int }},
    {{ col_dim | int }},
    {{ sql_string_literal(residual_table) }},
    {{ sql_string_literal(summary_table) }}
)
    {%- endset -%}
    {{ return(sql) }}
{% endmacro %}
