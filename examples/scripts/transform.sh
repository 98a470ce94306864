#!/bin/sh
# Drop bad rows, stage the data for the load, publish the row count.
set -e
grep -v ',-' "$WORK/raw.csv" > "$WORK/orders.csv"
rows=$(($(wc -l < "$WORK/orders.csv") - 1))
python3 - "$WORK" "$DAY" <<'PY'
import csv, sqlite3, sys
work, day = sys.argv[1], sys.argv[2]
db = sqlite3.connect(f"{work}/warehouse.db")
db.executescript("DROP TABLE IF EXISTS staging; CREATE TABLE staging (day, id, amount);"
                 "CREATE TABLE IF NOT EXISTS staging_meta (key PRIMARY KEY, value);")
with open(f"{work}/orders.csv") as f:
    db.executemany("INSERT INTO staging VALUES (?, ?, ?)",
                   [(r["day"], int(r["id"]), float(r["amount"])) for r in csv.DictReader(f)])
db.execute("INSERT OR REPLACE INTO staging_meta VALUES ('day', ?)", (day,))
db.commit()
PY
sleep 0.5
echo "rows=$rows" >> "$JAZ_OUTPUT"
echo "transformed $rows rows"
