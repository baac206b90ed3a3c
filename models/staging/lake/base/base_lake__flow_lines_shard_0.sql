{{ flow_lines_shard_model() }}
