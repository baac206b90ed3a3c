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
