{#- How surprising a finding is on the scale every detector shares: −ln of the number of normal
    findings per night that its detector makes at least as surprising, as that detector's tail
    fit (tail_fit_threshold) predicts: tail_cells · e^(−(surprise − tail_start) / tail_scale).
    A raw surprise −ln p is not comparable across detectors: one that tests 24 × more cells
    (an hour against a day) meets large surprises by chance 24 × more often, and one whose model
    under-states its tails (tail_scale β > 1) meets them more often still. Above its
    detector's threshold a finding's night surprise exceeds −ln(false_alarms); 5 means one such
    normal finding in about 150 nights, whichever detector made it. -#}
{% macro night_surprise(surprise, tail_start, tail_scale, tail_cells) -%}
    (({{ surprise }}) - ({{ tail_start }})) / ({{ tail_scale }}) - ln(({{ tail_cells }})::double precision)
{%- endmacro %}
