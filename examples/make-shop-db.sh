#!/bin/sh
# Rebuilds examples/shop.db from examples/shop.sql with python3's sqlite3 module.
set -eu
cd "$(dirname "$0")"
rm -f shop.db shop.db-wal shop.db-shm
python3 - <<'EOF'
import sqlite3

con = sqlite3.connect("shop.db")
with open("shop.sql", encoding="utf-8") as f:
    con.executescript(f.read())
con.execute("VACUUM")
con.close()

con = sqlite3.connect("shop.db")
for (name,) in con.execute(
    "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name"
):
    count = con.execute('SELECT count(*) FROM "%s"' % name.replace('"', '""')).fetchone()[0]
    print(f"{name}: {count} rows")
con.close()
EOF
