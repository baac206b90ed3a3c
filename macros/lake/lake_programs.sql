{#- Shell programs that file_fdw runs (COPY ... FROM PROGRAM) to read the lake.

    Every lake line is emitted once, as: dt, file name, line number, raw line, read error.
    The raw line travels in COPY's text format (backslash, tab and CR escaped by awk), so any
    bytes except NUL come through unchanged, malformed or not: parsing and rejecting lines is
    the staging model's job, where each rejected line gets its reason. A file that is not read
    whole adds one row with the error and no line (raw line null), after whatever lines could
    be read: its reader exits non-zero (truncated gzip, bad CRC, not gzip, unreadable: the
    reason is gzip's or cat's own message), it changed while it was read (size, modification
    time or inode differ before and after), or it has no line at all (a zero-byte file, or a
    gzip of nothing: a delivery file has at least its header line). Staging then refuses the
    day (fail_on_unreadable_lake_files). docker/greenplum/lake_reader.sh runs the same loop.
    mawk is preferred: when the reader stops early (LIMIT, a parallel worker), it dies of
    SIGPIPE as PostgreSQL expects, where gawk exits 2 and fails the query. -#}
{% macro lake_partition_program(partition_dir, dt) %}
    {%- set awk_script -%}
BEGIN {
  q = "\047"
  list = "find " q dir q " -mindepth 1 -maxdepth 1 -type f \\( -name " q "*.csv" q " -o -name " q "*.csv.gz" q " \\) -print | LC_ALL=C sort"
  n = 0
  while ((list | getline path) > 0) files[++n] = path
  close(list)
  for (i = 1; i <= n; i++) {
    path = files[i]
    name = path
    sub(/.*\//, "", name)
    gsub(/\\/, "\\\\\\\\", name); gsub(/\t/, "\\t", name); gsub(/\r/, "\\r", name)
    quoted = path
    gsub(q, q "\\" q q, quoted)
    statcmd = "find " q quoted q " -maxdepth 0 -printf " q "%s %T@ %i" q " 2>/dev/null"
    before = ""; statcmd | getline before; close(statcmd)
    reader = (path ~ /\.gz$/ ? "gzip -dc -- " : "cat -- ") q quoted q " 2>/dev/null"
    nr = 0
    while ((got = (reader | getline line)) > 0) {
      if (nr) print held "\t\\N"
      nr++
      sub(/\r$/, "", line)
      if (line ~ /[\\\t\r]/) { gsub(/\\/, "\\\\\\\\", line); gsub(/\t/, "\\t", line); gsub(/\r/, "\\r", line) }
      held = dt "\t" name "\t" nr "\t" line
    }
    status = close(reader)
    after = ""; statcmd | getline after; close(statcmd)
    error = ""
    if (got < 0 || status != 0) {
      # why: the message of gzip or cat, after the (maybe quoted) path
      why = (path ~ /\.gz$/ ? "gzip -t -- " : "cat -- ") q quoted q " 2>&1 >/dev/null"
      reason = ""
      while ((why | getline text) > 0) if (text != "") reason = text
      close(why)
      while ((at = index(reason, ": ")) > 0) reason = substr(reason, at + 2)
      error = "read failed after " nr " lines: " (reason == "" ? "reader error" : reason) " (exit status " status ")"
    } else if (before == "" || before != after) {
      error = "the file changed while it was read (size, modification time, inode: " before " before, " after " after)"
    } else if (nr == 0) {
      error = "empty file: not even the header line"
    }
    gsub(/\\/, "\\\\\\\\", error); gsub(/\t/, "\\t", error); gsub(/\r/, "\\r", error); gsub(/\n/, "\\n", error)
    # the last line read may be cut short: it says so
    if (nr) print held "\t" (error != "" ? "incomplete: the file was not read whole" : "\\N")
    if (error != "") print dt "\t" name "\t" (nr + 1) "\t\\N\t" error
  }
}
    {%- endset -%}
    {%- set program = "LC_ALL=C $(command -v mawk || echo awk) -v dir='" ~ partition_dir ~ "' -v dt='" ~ validated_partition_date(dt)
        ~ "' '" ~ awk_script | replace("'", "'\\''") ~ "'" -%}
    {{ return(program) }}
{% endmacro %}


{#- Lists the lake's files with size and modification time: cheap (no file is opened), used
    to find partitions and for source freshness. -#}
{% macro lake_listing_program(dataset_dir) %}
    {%- set program = "find '" ~ dataset_dir ~ "' -mindepth 2 -maxdepth 2 -type f "
        ~ "\\( -name '*.csv' -o -name '*.csv.gz' \\) -path '*/dt=*' -printf '%h\\t%f\\t%s\\t%T@\\n'"
        ~ " | sed 's|^.*/dt=\\([^\\t]*\\)\\t|\\1\\t|'" -%}
    {{ return(program) }}
{% endmacro %}


{#- Counts the lines of the files of one dt=… directory independently of the reader above (grep
    counts a last line without newline too), for the reconciliation test. -#}
{% macro lake_line_count_program(partition_dir, dt) %}
    {%- set program = "find '" ~ partition_dir ~ "' -mindepth 1 -maxdepth 1 -type f "
        ~ "\\( -name '*.csv' -o -name '*.csv.gz' \\) -print | LC_ALL=C sort | "
        ~ "while IFS= read -r f; do case \"$f\" in *.gz) n=$(gzip -dc -- \"$f\" 2>/dev/null | grep -c '');; "
        ~ "*) n=$(grep -c '' -- \"$f\");; esac; printf '%s\\t%s\\t%s\\n' '" ~ validated_partition_date(dt) ~ "' \"${f##*/}\" \"$n\"; done" -%}
    {{ return(program) }}
{% endmacro %}
