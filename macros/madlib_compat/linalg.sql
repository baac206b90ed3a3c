{#-
  madlib_compat's dense linear algebra (MADlib's linalg module): the eigen-decomposition of a
  symmetric matrix, in the steps of EISPACK's tred2 / tql2 / tinvit, each its own function.
  Only matrices of side min(row_dim, col_dim) come here, procedurally; everything
  proportional to the data size is set-based SQL in pca_train / pca_project.
  Matrices are 1-D float8 arrays with computed offsets: PL/pgSQL reads and writes of expanded
  1-D arrays are O(1), 2-D subscripting is markedly slower. No array slice is ever assigned
  (PostgreSQL 14+ only; Greenplum 7 reads slices but does not write them).
-#}
{% macro madlib_compat__linalg_ddl() %}
{% raw %}
-- Householder reduction of a symmetric n x n matrix (row-major, n >= 2) to tridiagonal
-- form, the first half of EISPACK's tred2. v: the reduced matrix, holding each reflection
-- u in column i+1 above the diagonal; d[i+1]: that reflection's h (u u'/h); e[i+1] = T(i+1, i).
create or replace function madlib_compat._tridiag_reduce(
    p_a float8[], p_n int, out v float8[], out d float8[], out e float8[])
language plpgsql immutable parallel safe as $$
declare
    n int := p_n;
    i int; j int; k int; o int; oj int;
    f float8; g float8; h float8; hh float8; scale float8;
begin
    v := p_a;                          -- V[i][j] = v[i*n + j + 1], 0-based i, j
    d := array_fill(0::float8, array[n]);
    e := array_fill(0::float8, array[n]);
    -- d/e are used 1-based below: d[j+1] holds EISPACK's d[j]
    o := (n - 1) * n;
    for j in 0 .. n - 1 loop
        d[j + 1] := v[o + j + 1];
    end loop;

    -- Householder reduction to tridiagonal form
    for i in reverse n - 1 .. 1 loop
        scale := 0;
        h := 0;
        for k in 1 .. i loop
            scale := scale + abs(d[k]);
        end loop;
        if scale = 0 then
            e[i + 1] := d[i];
            o := (i - 1) * n;
            for j in 0 .. i - 1 loop
                d[j + 1] := v[o + j + 1];
                v[i * n + j + 1] := 0;
                v[j * n + i + 1] := 0;
            end loop;
        else
            for k in 1 .. i loop
                d[k] := d[k] / scale;
                h := h + d[k] * d[k];
            end loop;
            f := d[i];
            g := sqrt(h);
            if f > 0 then
                g := -g;
            end if;
            e[i + 1] := scale * g;
            h := h - f * g;
            d[i] := f - g;
            for j in 1 .. i loop
                e[j] := 0;
            end loop;
            for j in 0 .. i - 1 loop
                f := d[j + 1];
                oj := j * n;
                v[oj + i + 1] := f;
                g := e[j + 1] + v[oj + j + 1] * f;
                for k in j + 1 .. i - 1 loop
                    g := g + v[k * n + j + 1] * d[k + 1];
                    e[k + 1] := e[k + 1] + v[k * n + j + 1] * f;
                end loop;
                e[j + 1] := g;
            end loop;
            f := 0;
            for j in 1 .. i loop
                e[j] := e[j] / h;
                f := f + e[j] * d[j];
            end loop;
            hh := f / (h + h);
            for j in 1 .. i loop
                e[j] := e[j] - hh * d[j];
            end loop;
            for j in 0 .. i - 1 loop
                f := d[j + 1];
                g := e[j + 1];
                for k in j .. i - 1 loop
                    v[k * n + j + 1] := v[k * n + j + 1] - (f * e[k + 1] + g * d[k + 1]);
                end loop;
                d[j + 1] := v[(i - 1) * n + j + 1];
                v[i * n + j + 1] := 0;
            end loop;
        end if;
        d[i + 1] := h;
    end loop;
end
$$;

-- Q of the reduction, accumulated from the reflections (tred2's second half): returns Q
-- (row-major) and T's diagonal.
create or replace function madlib_compat._tridiag_q(
    p_v float8[], p_h float8[], p_n int, out v float8[], out d float8[])
language plpgsql immutable parallel safe as $$
declare
    n int := p_n;
    i int; j int; k int; o int;
    g float8; h float8;
begin
    v := p_v;
    d := p_h;                          -- the h of each reflection, then scratch, then T's diagonal
    for i in 0 .. n - 2 loop
        o := (n - 1) * n;
        v[o + i + 1] := v[i * n + i + 1];
        v[i * n + i + 1] := 1;
        h := d[i + 2];
        if h <> 0 then
            for k in 0 .. i loop
                d[k + 1] := v[k * n + i + 2] / h;
            end loop;
            for j in 0 .. i loop
                g := 0;
                for k in 0 .. i loop
                    g := g + v[k * n + i + 2] * v[k * n + j + 1];
                end loop;
                for k in 0 .. i loop
                    v[k * n + j + 1] := v[k * n + j + 1] - g * d[k + 1];
                end loop;
            end loop;
        end if;
        for k in 0 .. i loop
            v[k * n + i + 2] := 0;
        end loop;
    end loop;
    o := (n - 1) * n;
    for j in 0 .. n - 1 loop
        d[j + 1] := v[o + j + 1];
        v[o + j + 1] := 0;
    end loop;
    v[n * n] := 1;
end
$$;

-- Implicit QL with shifts on a tridiagonal matrix (EISPACK tql2): diagonal p_d, p_e[r] =
-- T(r, r-1) for r >= 2. Returns the eigenvalues, unsorted, in d; with p_vt (the starting
-- vectors, column c at vt[(c-1)*n + 1 : c*n]) the rotations are applied to it too, else
-- vt is null and only the eigenvalues are computed (O(n^2) instead of ~2n^3).
create or replace function madlib_compat._tql2(
    p_d float8[], p_e float8[], p_vt float8[], p_n int, out d float8[], out vt float8[])
language plpgsql immutable parallel safe as $$
declare
    n int := p_n;
    e float8[] := p_e;
    i int; k int; l int; m int; o int; oj int; iter int;
    f float8; g float8; h float8; p float8; r float8; s float8; s2 float8;
    c float8; c2 float8; c3 float8; el1 float8; dl1 float8; tst1 float8;
    eps constant float8 := 2.220446049250313e-16;
begin
    d := p_d;
    vt := p_vt;
    -- implicit QL iterations on the tridiagonal matrix
    for i in 2 .. n loop
        e[i - 1] := e[i];
    end loop;
    e[n] := 0;
    f := 0;
    tst1 := 0;
    for l in 1 .. n loop
        tst1 := greatest(tst1, abs(d[l]) + abs(e[l]));
        m := l;
        while m <= n loop
            exit when abs(e[m]) <= eps * tst1;
            m := m + 1;
        end loop;
        if m > n then
            m := n;
        end if;
        if m > l then
            iter := 0;
            loop
                iter := iter + 1;
                if iter > 60 then
                    raise exception 'PCA error: eigen-decomposition did not converge';
                end if;
                g := d[l];
                p := (d[l + 1] - g) / (2 * e[l]);
                r := sqrt(p * p + 1);
                if p < 0 then
                    r := -r;
                end if;
                d[l] := e[l] / (p + r);
                d[l + 1] := e[l] * (p + r);
                dl1 := d[l + 1];
                h := g - d[l];
                for i in l + 2 .. n loop
                    d[i] := d[i] - h;
                end loop;
                f := f + h;
                p := d[m];
                c := 1; c2 := 1; c3 := 1;
                el1 := e[l + 1];
                s := 0; s2 := 0;
                for i in reverse m - 1 .. l loop
                    c3 := c2;
                    c2 := c;
                    s2 := s;
                    g := c * e[i];
                    h := c * p;
                    r := sqrt(p * p + e[i] * e[i]);
                    e[i + 1] := s * r;
                    s := e[i] / r;
                    c := p / r;
                    p := c * d[i] - s * g;
                    d[i + 1] := h + s * (c * g + s * d[i]);
                    -- rotate eigenvector columns i and i+1
                    continue when vt is null;
                    o := (i - 1) * n;
                    oj := i * n;
                    for k in 1 .. n loop
                        h := vt[oj + k];
                        vt[oj + k] := s * vt[o + k] + c * h;
                        vt[o + k] := c * vt[o + k] - s * h;
                    end loop;
                end loop;
                p := -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] := s * p;
                d[l] := c * p;
                exit when abs(e[l]) <= eps * tst1;
            end loop;
        end if;
        d[l] := d[l] + f;
        e[l] := 0;
    end loop;
end
$$;

-- V transposed (columns contiguous, as _tql2 rotates them).
create or replace function madlib_compat._transpose(p_v float8[], p_n int)
returns float8[]
language plpgsql immutable parallel safe as $$
declare
    vt float8[] := array_fill(0::float8, array[p_n * p_n]);
    j int; k int; o int;
begin
    for k in 0 .. p_n - 1 loop
        o := k * p_n;
        for j in 0 .. p_n - 1 loop
            vt[j * p_n + k + 1] := p_v[o + j + 1];
        end loop;
    end loop;
    return vt;
end
$$;

-- Eigenvalues in descending order with their vectors as contiguous columns (p_vt null:
-- zero vectors). Vectors are appended, never assigned to a slice.
create or replace function madlib_compat._eig_sorted(
    p_d float8[], p_vt float8[], p_n int, out eigenvalues float8[], out vectors float8[])
language plpgsql immutable parallel safe as $$
declare
    ord int[];
    j int; l int;
begin
    select array_agg(t.i order by t.x desc, t.i) into ord
    from unnest(p_d) with ordinality as t(x, i);
    eigenvalues := array_fill(0::float8, array[p_n]);
    vectors := case when p_vt is null then array_fill(0::float8, array[p_n * p_n]) else array[]::float8[] end;
    for j in 1 .. p_n loop
        l := ord[j];
        eigenvalues[j] := p_d[l];
        if p_vt is not null then
            vectors := vectors || p_vt[(l - 1) * p_n + 1 : l * p_n];
        end if;
    end loop;
end
$$;

-- The smallest k <= p_upto whose leading values p_lam reach the proportion p_prop of
-- p_total (cumulated in this order: pca_sparse_train and the solver must agree), else p_upto.
create or replace function madlib_compat._proportion_count(
    p_lam float8[], p_total float8, p_prop float8, p_upto int)
returns int
language plpgsql immutable parallel safe as $$
declare
    v_cum float8 := 0;
    i int;
begin
    for i in 1 .. p_upto loop
        v_cum := v_cum + p_lam[i] / p_total;
        if v_cum >= p_prop then
            return i;
        end if;
    end loop;
    return p_upto;
end
$$;

-- max row sum of |T| (diagonal dd, subdiagonal ee[2..n]): the scale of "close" eigenvalues.
create or replace function madlib_compat._tridiag_norm(p_dd float8[], p_ee float8[], p_n int)
returns float8
language plpgsql immutable parallel safe as $$
declare
    tnorm float8 := 0;
    i int;
begin
    for i in 1 .. p_n loop
        tnorm := greatest(tnorm, abs(p_dd[i]) + case when i > 1 then abs(p_ee[i]) else 0 end
                                              + case when i < p_n then abs(p_ee[i + 1]) else 0 end);
    end loop;
    return tnorm;
end
$$;

-- Do the p_k leading eigenvalues hold a group of 16 or more closer than 1e-3 |T|?
-- Inverse iteration orthogonalises within a group: such a group costs more than QL with vectors.
create or replace function madlib_compat._cluster_too_large(p_lam float8[], p_k int, p_tnorm float8)
returns boolean
language plpgsql immutable parallel safe as $$
declare
    gstart int := 1;
    jj int;
begin
    for jj in 2 .. p_k loop
        if p_lam[jj - 1] - p_lam[jj] >= 1e-3 * p_tnorm then
            gstart := jj;
        elsif jj - gstart >= 16 then
            return true;
        end if;
    end loop;
    return false;
end
$$;

-- Inverse iteration on the tridiagonal matrix (EISPACK tinvit): the eigenvectors of T for
-- the p_k leading eigenvalues p_lam (descending), column-major n x k; partial pivoting,
-- close eigenvalues perturbed apart and their vectors orthogonalised. Null when it cannot
-- (a group of 16 or more close eigenvalues, a vector that does not normalise): the caller
-- then uses QL with vectors.
create or replace function madlib_compat._tinvit(
    p_dd float8[], p_ee float8[], p_lam float8[], p_n int, p_k int, p_tnorm float8)
returns float8[]
language plpgsql immutable parallel safe as $$
declare
    n int := p_n;
    v_k int := p_k;
    dd float8[] := p_dd;
    ee float8[] := p_ee;
    eigenvalues float8[] := p_lam;
    tnorm float8 := p_tnorm;
    eps constant float8 := 2.220446049250313e-16;
    eps3 float8 := eps * p_tnorm;
    zz float8[] := array_fill(0::float8, array[p_n * p_k]);
    u1 float8[] := array_fill(0::float8, array[p_n]);
    u2 float8[] := u1; u3 float8[] := u1; ml float8[] := u1;
    pv boolean[] := array_fill(false, array[p_n]);
    y float8[];
    lam float8; lam_prev float8; curd float8; curs float8;
    sub float8; dg float8; sp float8; mt float8; nrm float8; f float8; h float8;
    i int; jj int; it int; gstart int; q int; o int;
begin
    for jj in 1 .. v_k loop
        lam := eigenvalues[jj];
        if jj = 1 or lam_prev - lam >= 1e-3 * tnorm then
            gstart := jj;                 -- a new group of close eigenvalues
        elsif jj - gstart >= 16 then
            -- orthogonalising within a large cluster costs more than QL with vectors
            return null;
        elsif lam > lam_prev - eps3 then
            lam := lam_prev - eps3;       -- perturbed apart: another vector comes out
        end if;
        -- T - lam I = P L U, U with two superdiagonals (u1, u2, u3)
        curd := dd[1] - lam;
        curs := ee[2];
        for i in 1 .. n - 1 loop
            sub := ee[i + 1];
            dg := dd[i + 1] - lam;
            sp := case when i + 1 < n then ee[i + 2] else 0 end;
            if abs(curd) >= abs(sub) then
                if curd = 0 then
                    curd := eps3;
                end if;
                mt := sub / curd;
                u1[i] := curd; u2[i] := curs; u3[i] := 0; pv[i] := false; ml[i] := mt;
                curd := dg - mt * curs;
                curs := sp;
            else
                mt := curd / sub;
                u1[i] := sub; u2[i] := dg; u3[i] := sp; pv[i] := true; ml[i] := mt;
                curd := curs - mt * dg;
                curs := -mt * sp;
            end if;
        end loop;
        u1[n] := case when curd = 0 then eps3 else curd end;
        y := array_fill(eps3, array[n]);
        for it in 1 .. 3 loop
            if it > 1 then
                for i in 1 .. n - 1 loop
                    if pv[i] then
                        h := y[i]; y[i] := y[i + 1]; y[i + 1] := h;
                    end if;
                    y[i + 1] := y[i + 1] - ml[i] * y[i];
                end loop;
            end if;
            y[n] := y[n] / u1[n];
            y[n - 1] := (y[n - 1] - u2[n - 1] * y[n]) / u1[n - 1];
            for i in reverse n - 2 .. 1 loop
                y[i] := (y[i] - u2[i] * y[i + 1] - u3[i] * y[i + 2]) / u1[i];
            end loop;
            for q in gstart .. jj - 1 loop
                o := (q - 1) * n;
                f := 0;
                for i in 1 .. n loop
                    f := f + y[i] * zz[o + i];
                end loop;
                for i in 1 .. n loop
                    y[i] := y[i] - f * zz[o + i];
                end loop;
            end loop;
            nrm := 0;
            for i in 1 .. n loop
                nrm := nrm + y[i] * y[i];
            end loop;
            nrm := sqrt(nrm);
            if not (nrm > 0 and nrm < 'infinity'::float8) then
                return null;
            end if;
            for i in 1 .. n loop
                y[i] := y[i] / nrm;
            end loop;
        end loop;
        o := (jj - 1) * n;
        for i in 1 .. n loop
            zz[o + i] := y[i];
        end loop;
        lam_prev := lam;

    end loop;
    return zz;
end
$$;

-- x = Q y for the p_k vectors y (column-major), Q given by its Householder reflections as
-- _tridiag_reduce left them (p_v, and each reflection's h in p_h): R_{n-1} ... R_1 y,
-- R_{i+1} = I - u u'/h on coordinates 0..i with u = column i+1 of the reduced V.
create or replace function madlib_compat._reflect(
    p_v float8[], p_h float8[], p_y float8[], p_n int, p_k int)
returns float8[]
language plpgsql immutable parallel safe as $$
declare
    n int := p_n;
    v_k int := p_k;
    v float8[] := p_v;
    dh float8[] := p_h;
    zz float8[] := p_y;
    x float8[];
    i int; jj int; k int; o int;
    g float8; h float8;
begin
    x := zz;
    for jj in 1 .. v_k loop
        o := (jj - 1) * n;
        for i in 0 .. n - 2 loop
            h := dh[i + 2];
            continue when h = 0;
            g := 0;
            for k in 0 .. i loop
                g := g + v[k * n + i + 2] * x[o + k + 1];
            end loop;
            g := g / h;
            for k in 0 .. i loop
                x[o + k + 1] := x[o + k + 1] - g * v[k * n + i + 2];
            end loop;
        end loop;
    end loop;
    return x;
end
$$;

-- x = Q y for the p_k vectors y, Q accumulated (row-major): one set-based product, p_k
-- aggregates over n^2 rows.
create or replace function madlib_compat._q_times(p_q float8[], p_y float8[], p_n int, p_k int)
returns float8[]
language plpgsql immutable parallel safe as $$
declare
    n int := p_n;
    v_k int := p_k;
    x float8[];
begin
    execute format($q$
        with zr as %5$s (
            select j, %1$s from generate_series(1, %2$s) j),
        xq as (
            select s.r, %3$s
            from (select g.r, zr.*, $1[g.r * %2$s + zr.j] as q
                    from generate_series(0, %2$s - 1) g(r) cross join zr offset 0) s
            group by s.r)
        select array_agg(u.x order by u.c, xq.r)
        from xq cross join lateral unnest(array[%4$s]) with ordinality u(x, c) $q$,
        madlib_compat._list(format('$2[(%%1$s - 1) * %s + j] as z%%1$s', n), v_k),
        n,
        madlib_compat._list('sum(s.q * s.z%1$s) as x%1$s', v_k),
        madlib_compat._list('xq.x%1$s', v_k),
        madlib_compat._cte_materialized())
        into x
        using p_q, p_y;
    return x;
end
$$;

-- Is |A x - lambda x| <= p_tol for every one of the p_k vectors x (A x: the same product)?
create or replace function madlib_compat._eig_check(
    p_a float8[], p_x float8[], p_lam float8[], p_n int, p_k int, p_tol float8)
returns boolean
language plpgsql immutable parallel safe as $$
declare
    n int := p_n;
    v_k int := p_k;
    v_ok boolean;
begin
    execute format($q$
        with xr as %5$s (
            select j, %1$s from generate_series(0, %2$s - 1) j),
        ax as (
            select s.r, %3$s
            from (select g.r, xr.*, $1[g.r * %2$s + xr.j + 1] as q
                    from generate_series(0, %2$s - 1) g(r) cross join xr offset 0) s
            group by s.r)
        select coalesce(bool_and(abs(u.d) <= $3), true)
        from ax join xr on xr.j = ax.r
        cross join lateral unnest(array[%4$s]) u(d) $q$,
        madlib_compat._list(format('$2[(%%1$s - 1) * %s + j + 1] as x%%1$s', n), v_k),
        n,
        madlib_compat._list('sum(s.q * s.x%1$s) as a%1$s', v_k),
        madlib_compat._list('ax.a%1$s - $4[%1$s] * xr.x%1$s', v_k),
        madlib_compat._cte_materialized())
        into v_ok
        using p_a, p_x, p_tol, p_lam;
    return v_ok;
end
$$;

-- Eigen-decomposition of a dense symmetric n x n matrix (row-major float8[n*n]):
-- Householder tridiagonalisation then implicit QL with shifts (the EISPACK tred2/tql2
-- pair). Chosen over Jacobi because it is O(n^3) with a small constant and needs no sweeps
-- to converge. Returns eigenvalues in descending order and the matching unit eigenvectors
-- column-major (vector i is vectors[(i-1)*n+1 : i*n]): with p_k, only the p_k leading
-- eigenvectors are wanted (the others are 0); p_k null and p_prop given, as many as the
-- smallest k whose eigenvalues sum to p_prop of the trace; both null: every vector through QL.
-- With a wanted count, QL runs without rotating eigenvectors and each wanted vector comes
-- from inverse iteration (_tinvit); x = Q y for all of them is then one product, and every
-- vector is checked (|A x - lambda x| within what QL itself achieves). Should one fail, or
-- a group of close eigenvalues be too large for cheap orthogonalisation, the full
-- decomposition is used instead.
create or replace function madlib_compat._symeig_core(
    p_a float8[], p_n int, p_k int, p_prop float8, out eigenvalues float8[], out vectors float8[])
language plpgsql immutable parallel safe as $$
declare
    n int := p_n;
    v_fast boolean := (p_k is not null or p_prop is not null) and p_n >= 8;
    -- few vectors: apply the Householder reflections to them instead of
    -- accumulating Q (n^2 statements per vector against ~2n^3/3 in all)
    v_refl boolean := p_k is not null and p_n >= 8 and p_k * 2 <= p_n;
    v_k int := p_k;
    v_tr float8 := 0;
    eps constant float8 := 2.220446049250313e-16;
    v float8[];                        -- the reduced matrix (reflections), or Q once accumulated
    dh float8[];                       -- each reflection's h
    d float8[]; e float8[];            -- the tridiagonal matrix: diagonal, e[r] = T(r, r-1) for r >= 2
    lam float8[]; vt float8[]; zz float8[]; x float8[];
    tnorm float8; tol float8;
    i int; j int;
begin
    if n = 0 then
        eigenvalues := array[]::float8[];
        vectors := array[]::float8[];
        return;
    end if;
    if n = 1 then
        eigenvalues := array[p_a[1]];
        vectors := array[1::float8];
        return;
    end if;
    select r.v, r.d, r.e into v, dh, e from madlib_compat._tridiag_reduce(p_a, n) r;
    if v_refl then
        -- Q is not accumulated: T's diagonal is left on V's diagonal
        d := array_fill(0::float8, array[n]);
        for j in 0 .. n - 1 loop
            d[j + 1] := v[j * n + j + 1];
        end loop;
    else
        select q.v, q.d into v, d from madlib_compat._tridiag_q(v, dh, n) q;
    end if;
    e[1] := 0;

    -- QL runs once without vectors; should the wanted eigenvalues hold a group
    -- too large for inverse iteration, it runs again, rotating vectors
    loop
        select q.d, q.vt into lam, vt
        from madlib_compat._tql2(d, e, case when v_fast then null else madlib_compat._transpose(v, n) end, n) q;
        select s.eigenvalues, s.vectors into eigenvalues, vectors from madlib_compat._eig_sorted(lam, vt, n) s;
        if not v_fast then
            return;
        end if;
        if v_k is null then
            -- the caller's rule (pca_sparse_train), on the trace
            for i in 1 .. n loop
                v_tr := v_tr + p_a[(i - 1) * n + i];
            end loop;
            v_k := case when v_tr > 0 then madlib_compat._proportion_count(eigenvalues, v_tr, p_prop, n) else n end;
        end if;
        v_k := least(greatest(v_k, 0), n);
        if v_k = 0 then
            return;
        end if;
        tnorm := madlib_compat._tridiag_norm(d, e, n);
        exit when not madlib_compat._cluster_too_large(eigenvalues, v_k, tnorm);
        if v_refl then
            -- Q was not accumulated
            select t.eigenvalues, t.vectors into eigenvalues, vectors from madlib_compat._symeig_core(p_a, p_n, null, null) t;
            return;
        end if;
        v_fast := false;
    end loop;

    -- the v_k leading vectors, by inverse iteration
    if not tnorm > 1e-150 then
        select t.eigenvalues, t.vectors into eigenvalues, vectors from madlib_compat._symeig_core(p_a, p_n, null, null) t;
        return;
    end if;
    tol := 1000 * n * eps * greatest(abs(eigenvalues[1]), abs(eigenvalues[n]), 1e-300);
    begin
        zz := madlib_compat._tinvit(d, e, eigenvalues, n, v_k, tnorm);
        if zz is not null then
            x := case when v_refl then madlib_compat._reflect(v, dh, zz, n, v_k)
                      else madlib_compat._q_times(v, zz, n, v_k) end;
        end if;
        if zz is null or not madlib_compat._eig_check(p_a, x, eigenvalues, n, v_k, tol) then
            select t.eigenvalues, t.vectors into eigenvalues, vectors from madlib_compat._symeig_core(p_a, p_n, null, null) t;
            return;
        end if;
        vectors := x || vectors[n * v_k + 1 : n * n];
    exception when numeric_value_out_of_range or division_by_zero then
        -- float overflow/underflow raise in PostgreSQL: fall back to QL
        select t.eigenvalues, t.vectors into eigenvalues, vectors from madlib_compat._symeig_core(p_a, p_n, null, null) t;
    end;
end
$$;

-- The p_k leading eigenpairs (all eigenvalues).
create or replace function madlib_compat._symeig_top(
    p_a float8[], p_n int, p_k int, out eigenvalues float8[], out vectors float8[])
language sql immutable parallel safe as $$
    select e.eigenvalues, e.vectors from madlib_compat._symeig_core($1, $2, $3, null) e
$$;

-- All eigenvectors.
create or replace function madlib_compat._symeig(
    p_a float8[], p_n int, out eigenvalues float8[], out vectors float8[])
language sql immutable parallel safe as $$
    select e.eigenvalues, e.vectors from madlib_compat._symeig_core($1, $2, null, null) e
$$;
{% endraw %}
{% endmacro %}
