-- What the project deliberately does otherwise than dbt Labs' dbt_project_evaluator's rules,
-- one row per case with its reason; the package reads this relation in place of its empty
-- exceptions seed (dbt_project.yml disables that seed). A model rather than a seed so that
-- macros/checks/create_evaluator_exceptions.sql can create it when a check builds only the
-- package's nodes (the package reads it with run_query, before any node of ours would run).
-- noqa: disable=LT05
-- (each reason is one sentence on its line)
select
    fct_name,
    column_name,
    id_to_exclude,
    comment
from (
    values
    ('fct_source_fanout', 'parent', 'lake.flows', 'Read by the two staging shards (base_lake__flow_lines_shard_0 and _1), each parsing its own lake days in its own backend; one model would parse the lake on one core'),
    ('fct_source_fanout', 'parent', 'lake.flow_files', 'The listing of lake files: each staging shard asks it which of its days are not loaded yet (lake_dates_to_load)'),
    ('fct_sources_without_freshness', 'resource_name', 'lake.flows', 'Freshness of the lake is measured on lake.flow_files (file modification times, without opening a file); the lines of lake.flows carry no load time'),
    ('fct_sources_without_freshness', 'resource_name', 'lake.flow_line_counts', 'An independent line count of the same files as lake.flows, for the reconciliation test; freshness is measured on lake.flow_files'),
    ('fct_unused_sources', 'parent', 'lake.flow_line_counts', 'Read only by the lines_reconcile_with_lake test of base_lake__flow_lines: an independent count of every file''s lines, not data for a model'),
    ('fct_exposure_parents_materializations', 'parent_resource_name', 'dim_%', 'The marts are views of the latest published night over their history tables: a night is published in one transaction (dim_runs), so readers never see half a night'),
    ('fct_exposure_parents_materializations', 'parent_resource_name', 'fct_%', 'The marts are views of the latest published night over their history tables: a night is published in one transaction (dim_runs), so readers never see half a night'),
    ('fct_model_fanout', 'parent', 'dim_runs', 'dim_runs is the publication: each mart view selects the latest published run from it'),
    ('fct_too_many_joins', 'resource_name', 'dim_runs', 'The publication: built after every history table of the run (depends_on, so that it comes last and its pre-hook can refuse a run missing from them), reading only the window dimensions; no join'),
    ('fct_too_many_joins', 'resource_name', 'int_pca_hourly_%', 'Stacks one table kind of the 24 per-hour PCA models (a union all of 24 tables, not joins); everything downstream reads the stacked model'),
    ('fct_missing_primary_key_tests', 'resource_name', 'base_lake__flow_lines_shard_%', 'The key (dt, source_file, line_number) is tested on their union base_lake__flow_lines; testing each shard too would scan every lake line twice'),
    ('fct_missing_primary_key_tests', 'resource_name', 'stg_flows', 'A filter of base_lake__flow_lines, whose key (dt, source_file, line_number) is tested there; testing it again would sort every flow a second time'),
    ('fct_multiple_sources_joined', 'child', 'base_lake__flow_lines_shard_%', 'Not a join: a shard reads the lines of lake.flows for the days that the listing lake.flow_files says it has not loaded yet (lake_dates_to_load)'),
    ('fct_rejoining_of_upstream_concepts', 'parent', 'int_pca_days', 'The window''s days: models that computed from it also label their rows with its dates or count its days (a dimension lookup, not a rejoined concept)'),
    ('fct_rejoining_of_upstream_concepts', 'parent', 'int_pca_users', 'The window''s users: models that computed from it also label their rows with user names or count its users (a dimension lookup, not a rejoined concept)'),
    ('fct_rejoining_of_upstream_concepts', 'parent_and_child', 'int_pca_spe_limits', 'fct_day_anomalies_history labels each (hour, day) with its date from the window dimension int_pca_days, from which the limits were also computed: a dimension lookup, not a rejoined concept'),
    ('fct_exposures_dependent_on_private_models', 'exposure_name', 'anomaly_%', 'The readers (the report, a dashboard) read the marts'' views by name from the database; dbt access levels govern ref() between dbt projects, and no other dbt project refs these models'),
    ('fct_model_naming_conventions', 'resource_name', 'dbt_project_evaluator_exceptions', 'This list itself: the package reads it under this name'),
    ('fct_root_models', 'child', 'dbt_project_evaluator_exceptions', 'This list itself: rows written in the model, read by no pipeline model'),
    ('fct_rejoining_of_upstream_concepts', 'child', 'rpt_spikes', 'rpt_spikes compares tonight''s spikes with the previous kept night''s rows of fct_user_spikes_history, that night being named by rpt_nights')
) as exceptions (fct_name, column_name, id_to_exclude, comment)
-- noqa: enable=LT05
