#!/bin/sh
# Fake source: writes $ROWS orders for $DAY.
set -e
echo "extracting orders for $DAY (attempt $JAZ_ATTEMPT)"
awk -v n="$ROWS" -v day="$DAY" 'BEGIN { srand(42); print "day,id,amount";
    for (i = 1; i <= n; i++) printf "%s,%d,%.2f\n", day, i, rand() * 200 }' > "$WORK/raw.csv"
sleep 1
echo "extracted $(($(wc -l < "$WORK/raw.csv") - 1)) orders"
