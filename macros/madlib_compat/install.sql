{#-
  dbt run-operation install_madlib_compat
  (Re)creates schema madlib_compat and every function in it; idempotent.
-#}
{% macro install_madlib_compat() %}
    {% set parts = [
        ('linear algebra and identifier helpers', madlib_compat__linalg_ddl()),
        ('pca_sparse_train', madlib_compat__pca_train_ddl()),
        ('pca_sparse_project', madlib_compat__pca_project_ddl()),
    ] %}
    {% for label, ddl in parts %}
        {% do run_query(ddl) %}
        {{ log('madlib_compat: installed ' ~ label, info=True) }}
    {% endfor %}
    {% do run_query('commit') %}
{% endmacro %}

{#- The whole DDL as one string, e.g. for tools that install without dbt. -#}
{% macro madlib_compat__ddl() %}
{{ madlib_compat__linalg_ddl() }}
{{ madlib_compat__pca_train_ddl() }}
{{ madlib_compat__pca_project_ddl() }}
{% endmacro %}
