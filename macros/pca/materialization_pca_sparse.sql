{#- Materialization for one hourly PCA. The model's select is the sparse matrix
    (row_id, col_id, value); the node's relation is MADlib's principal-component table, with
    its companions beside it:
      <model>            row_id, principal_components, std_dev, proportion   (pca_sparse_train)
      <model>_mean       column_mean
      <model>_summary    rows_used, "exec_time (ms)", iter, recon_error, …
      <model>_projection row_id, row_vec   (each day in component coordinates)
      <model>_residual   row_id, row_vec   (each day's residual, for the SPE)
      <model>_projection_summary
    Everything is built under temporary names and swapped in one transaction, so a failed
    or killed run never leaves a half-built table under the model's name (MADlib also
    refuses to overwrite its outputs, hence the fresh names). -#}
{% materialization pca_sparse, adapter='postgres' %}
    {%- set hour = model.config.meta.hour_of_day -%}
    {%- set backend = pca_backend_schema() -%}
    {%- set suffixes = ['', '_mean', '_summary', '_projection', '_residual', '_projection_summary'] -%}
    {%- set base = this.identifier -%}
    {%- set staging_name = base ~ '__new' -%}
    {%- set input_relation = api.Relation.create(database=this.database, schema=this.schema, identifier=base ~ '__input') -%}
    {%- set target_relation = this.incorporate(type='table') -%}

    {{ run_hooks(pre_hooks) }}

    {#- leftovers of an interrupted run -#}
    {%- for suffix in suffixes -%}
        {% do adapter.drop_relation(api.Relation.create(database=this.database, schema=this.schema, identifier=staging_name ~ suffix, type='table')) %}
    {%- endfor -%}

    {% call statement('pca_input') -%}
        create or replace view {{ input_relation }} as (
            {{ sql }}
        )
    {%- endcall %}

    {%- set dims = run_query("select (select count(*) from " ~ ref('int_pca_days') ~ "), (select count(*) from " ~ ref('int_pca_users') ~ ")") -%}
    {%- set row_dim = dims.columns[0].values()[0] | int -%}
    {%- set col_dim = dims.columns[1].values()[0] | int -%}
    {#- MADlib takes table names as text: keep them to plain identifiers -#}
    {%- if not modules.re.fullmatch('[a-z_][a-z0-9_]*', this.schema) or not modules.re.fullmatch('[a-z_][a-z0-9_]*', base) -%}
        {{ exceptions.raise_compiler_error("PCA tables need a lowercase identifier schema and name (letters, digits, _), got: " ~ this.schema ~ "." ~ base) }}
    {%- endif -%}
    {%- set qualified = this.schema ~ '.' -%}

    {% call statement('main') -%}
        {{ pca_sparse_train_sql(backend, qualified ~ input_relation.identifier, qualified ~ staging_name,
            row_dim, col_dim, pca_components_param(hour), qualified ~ staging_name ~ '_summary') }}
    {%- endcall %}

    {% call statement('pca_project') -%}
        {{ pca_sparse_project_sql(backend, qualified ~ input_relation.identifier, qualified ~ staging_name,
            qualified ~ staging_name ~ '_projection', row_dim, col_dim,
            qualified ~ staging_name ~ '_residual', qualified ~ staging_name ~ '_projection_summary') }}
    {%- endcall %}

    {#- swap in: drop the previous outputs, rename the new ones (same transaction) -#}
    {%- for suffix in suffixes -%}
        {% do adapter.drop_relation(api.Relation.create(database=this.database, schema=this.schema, identifier=base ~ suffix, type='table')) %}
        {% call statement('rename' ~ suffix) -%}
            alter table {{ adapter.quote(this.schema) }}.{{ adapter.quote(staging_name ~ suffix) }} rename to {{ adapter.quote(base ~ suffix) }}
        {%- endcall %}
    {%- endfor -%}

    {{ run_hooks(post_hooks) }}

    {% do adapter.commit() %}

    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
