{#- Every row's lake day belongs to the model's staging shard: its day number (proleptic
    Gregorian ordinal, day 1 = 0001-01-01, as dates_of_shard counts) modulo the shard count is
    the shard's number (`shards` defaults to staging_shard_count()). A day in another shard
    too would be counted twice by their union. -#}
{% test days_of_shard(model, column_name, shard, shards=none) %}
{%- set shards = shards if shards is not none else staging_shard_count() -%}

select {{ column_name }}
from {{ model }}
where mod(({{ column_name }} - date '0001-01-01') + 1, {{ shards | int }}) <> {{ shard | int }}

{% endtest %}
