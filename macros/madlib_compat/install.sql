{#-
  dbt run-operation install_madlib_compat
  (Re)creates schema madlib_compat and every function in it; idempotent.
  The module is laid out like MADlib's: utils.sql (helpers), linalg.sql (eigen-decomposition),
  pca_validate.sql (argument checks), pca_train.sql and pca_project.sql (the implementation,
  step by step), pca.sql (the interface: signatures, overloads, help).
-#}
{% macro install_madlib_compat() %}
    {% do run_query(madlib_compat__ddl()) %}
    {% do run_query('commit') %}
    {{ log('madlib_compat: installed', info=True) }}
{% endmacro %}

{#- The whole DDL as one string, in dependency order (a SQL function's body is checked when it
    is created, so what it calls comes first); also what `traffic_anomalies.macro_text`
    renders for the benchmark and the tests, which install without dbt. -#}
{% macro madlib_compat__ddl() %}
{{ madlib_compat__utils_ddl() }}
{{ madlib_compat__linalg_ddl() }}
{{ madlib_compat__pca_validate_ddl() }}
{{ madlib_compat__pca_train_ddl() }}
{{ madlib_compat__pca_project_ddl() }}
{{ madlib_compat__pca_ddl() }}
{% endmacro %}
