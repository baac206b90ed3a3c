"""What a project macro renders, for the programs that install it without running dbt: the
gpfdist transform script (gpfdist's host may have no database) and the madlib_compat DDL of
the PCA benchmark. The macro files are Jinja; a macro that uses nothing of dbt's context
renders the same text with Jinja alone, so the macro stays the one source."""

from __future__ import annotations

import jinja2

from traffic_anomalies import PROJECT_DIR

MACRO_DIR = PROJECT_DIR / "macros"


def render(macro: str, *files: str, **kwargs) -> str:
    """Call `macro`, defined in one of `files` (paths under macros/, read in that order)."""
    env = jinja2.Environment(extensions=["jinja2.ext.do"], undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    source = "\n".join((MACRO_DIR / name).read_text() for name in files)
    module = env.from_string(source).module
    return str(getattr(module, macro)(**kwargs))


def lake_reader_script() -> str:
    """The lake reader gpfdist's transforms run (macros/lake/lake_programs.sql)."""
    return render("lake_reader_script", "lake/lake_programs.sql")


def madlib_compat_ddl() -> str:
    """The DDL of schema madlib_compat, as `dbt run-operation install_madlib_compat` runs it."""
    files = sorted(str(path.relative_to(MACRO_DIR)) for path in (MACRO_DIR / "madlib_compat").glob("*.sql"))
    return render("madlib_compat__ddl", *files)
