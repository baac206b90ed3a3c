{#- The lake's readers: ONE source for both engines. PostgreSQL's file_fdw runs them as
    `COPY ... FROM PROGRAM` (lake_partition_program, lake_listing_program,
    lake_line_count_program); Greenplum's gpfdist runs lake_reader_script, which
    `traffic-anomalies gpfdist up | reader` writes from this file (rendered with Jinja alone: the
    macros below it use nothing of dbt's context), with the same awk program and line count.

    Every lake line is emitted once, as: dt, file name, line number, raw line, read error, then
    the reader's check of the line and, on a valid line, its typed fields (the lake source
    `flows` lists the columns). The raw line travels in COPY's text format (backslash, tab and
    CR escaped by awk), so any bytes except NUL come through unchanged, malformed or not. The
    reader splits and checks the common line (printable ASCII, seven fields of the usual
    shapes) in C, as staging's SQL would, and says `valid` with the fields, or the reason when
    it is plain (empty_line, wrong_column_count); every other line (the header, non-ASCII,
    unusual shapes, read errors) it leaves to staging's SQL checks, which give each rejected
    line its reason: parsing every line in SQL cost ~14 µs a line. A file that is not read
    whole adds one row with the error and no line (raw line null), after whatever lines could
    be read: its reader exits non-zero (truncated gzip, bad CRC, not gzip, unreadable: the
    reason is gzip's or cat's own message), it changed while it was read (size, modification
    time or inode differ before and after), or it has no line at all (a zero-byte file, or a
    gzip of nothing: a delivery file has at least its header line). Staging then refuses the
    day (fail_on_unreadable_lake_files).
    mawk is preferred: when the reader stops early (LIMIT, a parallel worker), it dies of
    SIGPIPE as PostgreSQL expects, where gawk exits 2 and fails the query. -#}

{#- The awk line reader. Variables: dt (the partition's date) and either file (one file: gpfdist
    runs the reader once per file) or dir (every *.csv / *.csv.gz of that directory, in byte
    order: file_fdw reads a whole partition). -#}
{% macro lake_reader_awk() -%}
# Days since 1970-01-01 of a proleptic Gregorian date, and back to YYYY-MM-DD (the civil-date algorithms of H. Hinnant).
function days_from_civil(y, m, d,   era, yoe, doy) {
  y -= (m <= 2)
  era = int((y >= 0 ? y : y - 399) / 400)
  yoe = y - era * 400
  doy = int((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy - 719468
}
function civil(z,   era, doe, yoe, doy, mp, d, m) {
  z += 719468
  era = int((z >= 0 ? z : z - 146096) / 146097)
  doe = z - era * 146097
  yoe = int((doe - int(doe / 1460) + int(doe / 36524) - int(doe / 146096)) / 365)
  doy = doe - (365 * yoe + int(yoe / 4) - int(yoe / 100))
  mp = int((5 * doy + 2) / 153)
  d = doy - int((153 * mp + 2) / 5) + 1
  m = mp + (mp < 10 ? 3 : -9)
  return sprintf("%04d-%02d-%02d", yoe + era * 400 + (m <= 2), m, d)
}
# The checks of a data line of printable ASCII without backslash, as staging would make them
# (flow_lines_shard_model), for the common line only: the line check ("valid", or the reason
# when it is plain: empty_line, wrong_column_count) and the typed columns of a valid line.
# Anything else is left to staging's SQL checks (all columns null): a subset of what staging
# accepts is accepted here, so reasons and rows are the same either way.
function checked(line,   f, ts, e, day, h, date, fmt, u, p, b) {
  if (line == "") return "empty_line" nulls
  if (split(line, f, ",") != 7) return "wrong_column_count" nulls
  ts = f[1]
  if (length(ts) == 20 && ts ~ /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z$/ && (substr(ts, 1, 10) in dayno) && substr(ts, 12, 2) + 0 < 24) {
    # one of the three days around the partition: a real date, inside the partition's window
    date = substr(ts, 1, 10)
    h = substr(ts, 12, 2) + 0
    e = dayno[date] * 86400 + h * 3600 + substr(ts, 15, 2) * 60 + substr(ts, 18, 2)
    fmt = "iso8601"
  } else if (ts ~ /^[0-9]+$/ && (length(ts) == 9 || length(ts) == 10)) {
    e = ts + 0
    if (e < lo || e >= hi) return slow
    day = int(e / 86400)
    h = int((e - day * 86400) / 3600)
    date = (day in civil_days) ? civil_days[day] : (civil_days[day] = civil(day))
    fmt = "epoch"
  } else return slow
  u = f[2]
  if (u == "" || u ~ /^ / || u ~ / $/ || length(u) > 128) return slow
  if (f[3] !~ ipv4 || f[4] !~ ipv4) return slow
  p = f[5]
  if (p !~ /^[0-9]+$/ || length(p) > 5 || p + 0 > 65535) return slow
  if (f[6] !~ /^[a-z0-9-]+$/ || length(f[6]) > 16) return slow
  b = f[7]
  if (b !~ /^[0-9]+$/ || length(b) > 13) return slow
  return "valid\t" sprintf("%.0f", e) "\t" fmt "\t" date "\t" h "\t" u "\t" f[3] "\t" f[4] "\t" p "\t" f[6] "\t" b
}
BEGIN {
  q = "\047"
  # the columns after the read error: line check, started_at (epoch seconds), timestamp
  # format, activity date, hour of day, user, source and destination IP, port, protocol, bytes
  nulls = ""
  # a canonical dotted quad: what staging's IPv4 check accepts
  octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
  ipv4 = "^" octet "\\." octet "\\." octet "\\." octet "$"
  for (i = 1; i <= 10; i++) nulls = nulls "\t\\N"
  slow = "\\N" nulls
  today = days_from_civil(substr(dt, 1, 4) + 0, substr(dt, 6, 2) + 0, substr(dt, 9, 2) + 0)
  for (i = -1; i <= 1; i++) dayno[civil(today + i)] = today + i
  lo = (today - 1) * 86400
  hi = (today + 2) * 86400
  n = 0
  if (file != "") files[++n] = file
  else {
    list = "find " q dir q " -mindepth 1 -maxdepth 1 -type f \\( -name " q "*.csv" q " -o -name " q "*.csv.gz" q " \\) -print | LC_ALL=C sort"
    while ((list | getline path) > 0) files[++n] = path
    close(list)
  }
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
      if (nr) print held "\t\\N\t" tail
      nr++
      sub(/\r$/, "", line)
      tail = (nr > 1 && line !~ /[^ -~]/ && index(line, "\\") == 0) ? checked(line) : slow
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
    if (nr) print held "\t" (error != "" ? "incomplete: the file was not read whole\t" slow : "\\N\t" tail)
    if (error != "") print dt "\t" name "\t" (nr + 1) "\t\\N\t" error "\t" slow
  }
}
{%- endmacro %}


{% macro lake_partition_program(partition_dir, dt) %}
    {%- set program = "LC_ALL=C $(command -v mawk || echo awk) -v dir='" ~ partition_dir ~ "' -v dt='" ~ validated_partition_date(dt)
        ~ "' '" ~ lake_reader_awk() | replace("'", "'\\''") ~ "'" -%}
    {{ return(program) }}
{% endmacro %}


{#- Lists the lake's files with size and modification time: cheap (no file is opened), used
    to find partitions and for source freshness. -#}
{% macro lake_listing_program(dataset_dir) %}
    {%- set program = "find '" ~ dataset_dir ~ "' -mindepth 2 -maxdepth 2 -type f "
        ~ "\\( -name '*.csv' -o -name '*.csv.gz' \\) -path '*/dt=*' -printf '%h\\t" ~ lake_listing_fields() ~ "'"
        ~ " | sed 's|^.*/dt=\\([^\\t]*\\)\\t|\\1\\t|'" -%}
    {{ return(program) }}
{% endmacro %}


{#- find's -printf format of one listed file: name, size in bytes, modification time (epoch). -#}
{% macro lake_listing_fields() -%}
%f\t%s\t%T@\n
{%- endmacro %}


{#- Counts the lines of the files of one dt=… directory independently of the reader above (grep
    counts a last line without newline too), for the reconciliation test. -#}
{% macro lake_line_count_program(partition_dir, dt) %}
    {%- set program = "find '" ~ partition_dir ~ "' -mindepth 1 -maxdepth 1 -type f "
        ~ "\\( -name '*.csv' -o -name '*.csv.gz' \\) -print | LC_ALL=C sort | "
        ~ "while IFS= read -r f; do " ~ lake_line_count_shell() ~ "; "
        ~ "printf '%s\\t%s\\t%s\\n' '" ~ validated_partition_date(dt) ~ "' \"${f##*/}\" \"$n\"; done" -%}
    {{ return(program) }}
{% endmacro %}


{#- Shell: the number of lines of file "$f" into n. -#}
{% macro lake_line_count_shell() -%}
case "$f" in *.gz) n=$(gzip -dc -- "$f" 2>/dev/null | grep -c '');; *) n=$(grep -c '' -- "$f");; esac
{%- endmacro %}


{#- The gpfdist transform script (see orchestration/traffic_anomalies/gpfdist.py): the readers
    above, for one file at a time. -#}
{% macro lake_reader_script() -%}
#!/bin/sh
# The lake readers for gpfdist transforms, written by `traffic-anomalies gpfdist up | reader`
# from macros/lake/lake_programs.sql (lake_reader_script): do not edit, regenerate.
# gpfdist runs it once per file of the external table's LOCATION, with the file's full path.
# The output rows are those of the file_fdw readers, one file at a time:
#   lines        dt, file, line number, raw line (COPY text-escaped), read error  (lake_partition_program)
#   listing      dt, file, size in bytes, modification time in epoch seconds    (lake_listing_program)
#   line_counts  dt, file, number of lines                                      (lake_line_count_program)
# Files that are not flows/dt=YYYY-MM-DD/*.csv[.gz] give no row.
set -u
mode=${1:?usage: lake_reader.sh lines|listing|line_counts FILE}
path=${2:?usage: lake_reader.sh lines|listing|line_counts FILE}

name=${path##*/}
dir=${path%/*}
dt=${dir##*/dt=}
case "$dir" in */dt=*) ;; *) exit 0 ;; esac
case "$dt" in [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]) ;; *) exit 0 ;; esac
case "$name" in *.csv|*.csv.gz) ;; *) exit 0 ;; esac

case "$mode" in
lines)
    LC_ALL=C exec $(command -v mawk || echo awk) -v file="$path" -v dt="$dt" '{{ lake_reader_awk() | replace("'", "'\\''") }}'
    ;;
listing)
    printf '%s\t' "$dt"
    find "$path" -maxdepth 0 -type f -printf '{{ lake_listing_fields() }}'
    ;;
line_counts)
    f=$path
    {{ lake_line_count_shell() }}
    printf '%s\t%s\t%s\n' "$dt" "$name" "$n"
    ;;
*)
    echo "lake_reader.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac
{% endmacro %}
