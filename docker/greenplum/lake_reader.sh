#!/bin/sh
# The lake readers for gpfdist transforms (see gpfdist-transform.yaml): gpfdist runs this once
# per file of the external table's LOCATION, with the file's full path. The output rows are
# those of the PostgreSQL readers in macros/lake/lake_programs.sql, one file at a time:
#   lines        dt, file, line number, raw line (COPY text-escaped), read error  (as lake_partition_program)
#   listing      dt, file, size in bytes, modification time in epoch seconds    (as lake_listing_program)
#   line_counts  dt, file, number of lines                                      (as lake_line_count_program)
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
    # The loop body of lake_partition_program's awk script, for this one file.
    LC_ALL=C exec awk -v path="$path" -v dt="$dt" '
BEGIN {
  q = "\047"
  name = path
  sub(/.*\//, "", name)
  gsub(/\\/, "\\\\\\\\", name); gsub(/\t/, "\\t", name); gsub(/\r/, "\\r", name)
  quoted = path
  gsub(q, q "\\" q q, quoted)
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
  failed = (got < 0 || status != 0)
  # the last line read may be cut short: it says so
  if (nr) print held "\t" (failed ? "incomplete: the file could not be read past this line" : "\\N")
  if (failed) print dt "\t" name "\t" (nr + 1) "\t\\N\tread failed after " nr " lines (reader exit status " status ")"
}'
    ;;
listing)
    printf '%s\t' "$dt"
    find "$path" -maxdepth 0 -type f -printf '%f\t%s\t%T@\n'
    ;;
line_counts)
    case "$path" in
    *.gz) n=$(gzip -dc -- "$path" 2>/dev/null | grep -c '') ;;
    *) n=$(grep -c '' -- "$path") ;;
    esac
    printf '%s\t%s\t%s\n' "$dt" "$name" "$n"
    ;;
*)
    echo "lake_reader.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac
