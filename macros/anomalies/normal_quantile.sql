{#- The standard normal quantile Φ⁻¹(p) as a SQL expression: Wichura's algorithm AS241
    (PPND16, Applied Statistics 37(3), 1988), relative accuracy about 1e-16 over (0, 1).
    `p` is any SQL expression of a probability in (0, 1); a Jinja number is validated here.
    The result is a scalar subquery (no function to install, same text on PostgreSQL and
    Greenplum); p outside (0, 1) or null gives null. The range is checked in CASEs, not in a
    WHERE: with `p` referencing an outer query, Greenplum 7's planner fails on a qual over the
    FROM-less derived table ("unexpected RTE kind 8"). -#}
{% macro normal_quantile(p) %}
    {%- if p is number -%}
        {%- if p is boolean or p <= 0 or p >= 1 -%}
            {{ exceptions.raise_compiler_error("normal_quantile needs a probability strictly between 0 and 1, got: " ~ (p | tojson)) }}
        {%- endif -%}
        {%- set p_sql = (p | float) ~ '::double precision' -%}
    {%- else -%}
        {%- set p_sql = '(' ~ p ~ ')::double precision' -%}
    {%- endif -%}
(
    select
        case
            when not (nq.p > 0 and nq.p < 1) then null
            when abs(nq.q) <= 0.425 then
                nq.q * (((((((2.5090809287301226727e+3 * nq.r_central
                    + 3.3430575583588128105e+4) * nq.r_central
                    + 6.7265770927008700853e+4) * nq.r_central
                    + 4.5921953931549871457e+4) * nq.r_central
                    + 1.3731693765509461125e+4) * nq.r_central
                    + 1.9715909503065514427e+3) * nq.r_central
                    + 1.3314166789178437745e+2) * nq.r_central
                    + 3.3871328727963666080e+0)
                / (((((((5.2264952788528545610e+3 * nq.r_central
                    + 2.8729085735721942674e+4) * nq.r_central
                    + 3.9307895800092710610e+4) * nq.r_central
                    + 2.1213794301586595867e+4) * nq.r_central
                    + 5.3941960214247511077e+3) * nq.r_central
                    + 6.8718700749205790830e+2) * nq.r_central
                    + 4.2313330701600911252e+1) * nq.r_central
                    + 1.0)
            when nq.r_tail <= 5.0 then
                sign(nq.q) * (((((((7.74545014278341407640e-4 * (nq.r_tail - 1.6)
                    + 2.27238449892691845833e-2) * (nq.r_tail - 1.6)
                    + 2.41780725177450611770e-1) * (nq.r_tail - 1.6)
                    + 1.27045825245236838258e+0) * (nq.r_tail - 1.6)
                    + 3.64784832476320460504e+0) * (nq.r_tail - 1.6)
                    + 5.76949722146069140550e+0) * (nq.r_tail - 1.6)
                    + 4.63033784615654529590e+0) * (nq.r_tail - 1.6)
                    + 1.42343711074968357734e+0)
                / (((((((1.05075007164441684324e-9 * (nq.r_tail - 1.6)
                    + 5.47593808499534494600e-4) * (nq.r_tail - 1.6)
                    + 1.51986665636164571966e-2) * (nq.r_tail - 1.6)
                    + 1.48103976427480074590e-1) * (nq.r_tail - 1.6)
                    + 6.89767334985100004550e-1) * (nq.r_tail - 1.6)
                    + 1.67638483018380384940e+0) * (nq.r_tail - 1.6)
                    + 2.05319162663775882187e+0) * (nq.r_tail - 1.6)
                    + 1.0)
            else
                sign(nq.q) * (((((((2.01033439929228813265e-7 * (nq.r_tail - 5.0)
                    + 2.71155556874348757815e-5) * (nq.r_tail - 5.0)
                    + 1.24266094738807843860e-3) * (nq.r_tail - 5.0)
                    + 2.65321895265761230930e-2) * (nq.r_tail - 5.0)
                    + 2.96560571828504891230e-1) * (nq.r_tail - 5.0)
                    + 1.78482653991729133580e+0) * (nq.r_tail - 5.0)
                    + 5.46378491116411436990e+0) * (nq.r_tail - 5.0)
                    + 6.65790464350110377720e+0)
                / (((((((2.04426310338993978564e-15 * (nq.r_tail - 5.0)
                    + 1.42151175831644588870e-7) * (nq.r_tail - 5.0)
                    + 1.84631831751005468180e-5) * (nq.r_tail - 5.0)
                    + 7.86869131145613259100e-4) * (nq.r_tail - 5.0)
                    + 1.48753612908506148525e-2) * (nq.r_tail - 5.0)
                    + 1.36929880922735805310e-1) * (nq.r_tail - 5.0)
                    + 5.99832206555887937690e-1) * (nq.r_tail - 5.0)
                    + 1.0)
        end
    from (
        select
            nq_p.p,
            nq_p.q,
            0.180625 - nq_p.q * nq_p.q as r_central,
            case when nq_p.p > 0 and nq_p.p < 1 then sqrt(-ln(least(nq_p.p, 1.0 - nq_p.p))) end as r_tail
        from (
            select
                p_value as p,
                p_value - 0.5 as q
            from (select {{ p_sql }} as p_value) as nq_in
        ) as nq_p
    ) as nq
)
{%- endmacro %}
