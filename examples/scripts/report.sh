#!/bin/sh
set -e
{
  echo "$REPORT_TITLE"
  echo "loaded: $loaded orders, revenue: $revenue"
  echo "customers: $customers"
} > "$WORK/report.txt"
cat "$WORK/report.txt"
cat >> "$JAZ_OUTPUT" <<OUT
REPORT<<END
$(cat "$WORK/report.txt")
END
OUT
