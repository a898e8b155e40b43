#!/usr/bin/env python3
"""The server's own time for an incremental pass's read: the baseline of bench case 3.

    pass-server-time.py HOST PORT ROUNDS DB...

Each round, in each database's `orders` (as run.sh makes it): 1,000 random rows get a new
`update_time`, then the statement a pass runs (keyset pagination in its expanded form, as
connectors/src/mysql/query.rs writes it) reads them, timed by the server (`SET profiling = 1`,
so the client's decoding is left out). Printed per database, median (min-max) of the rounds:

- first: the statement as the pass runs it, right after the changes;
- again: the same statement at once once more, its pages just read;
- index: the same range from the cursor index alone (`SELECT update_time, id`), no row lookups.
"""

import random
import statistics
import sys

import pymysql

COLUMNS = ("id, customer_id, status, amount, currency, note, attrs, is_gift, created_at, "
           "update_time, shipped_at, token")
RANGE = ("FROM orders WHERE (update_time > %s OR (update_time = %s AND id > %s)) "
         "AND update_time <= %s ORDER BY update_time, id LIMIT 10000")
CHANGES = 1000


def server_seconds(cursor, sql, args):
    """Runs `sql`, reads every row, and returns the server's time for it (SHOW PROFILES)."""
    cursor.execute(sql, args)
    rows = cursor.fetchall()
    cursor.execute("SHOW PROFILES")
    return float(cursor.fetchall()[-1][1]), rows


def one_round(connection):
    cursor = connection.cursor()
    cursor.execute("SELECT MAX(update_time), MAX(id) FROM orders")
    last, highest = cursor.fetchone()
    ids = random.sample(range(1, highest + 1), CHANGES)
    cursor.execute("UPDATE orders SET update_time = NOW(6), amount = amount + 1 "
                   f"WHERE id IN ({','.join(map(str, ids))})")
    cursor.execute("SELECT NOW(6)")
    (bound,) = cursor.fetchone()
    # the key after the last row at `last`: every row at `last` was read by the pass before
    args = (last, last, 2**64 - 1, bound)
    first, rows = server_seconds(cursor, f"SELECT {COLUMNS} {RANGE}", args)
    if len(rows) != CHANGES:
        sys.exit(f"the pass's statement read {len(rows)} rows, not the {CHANGES} changed")
    again, _ = server_seconds(cursor, f"SELECT {COLUMNS} {RANGE}", args)
    index, _ = server_seconds(cursor, f"SELECT update_time, id {RANGE}", args)
    return {"first": first, "again": again, "index": index}


def main():
    host, port, rounds, databases = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    connections = {}
    for db in databases:
        connections[db] = pymysql.connect(host=host, port=port, user="root", database=db, autocommit=True)
        connections[db].cursor().execute("SET profiling = 1, profiling_history_size = 100")
    times = {db: {"first": [], "again": [], "index": []} for db in databases}
    for _ in range(rounds):
        # the tables take turns, as highwater's passes do
        for db in databases:
            for kind, seconds in one_round(connections[db]).items():
                times[db][kind].append(seconds)
    base = databases[0]
    print(f"the server's time for a pass's read of {CHANGES:,} changed rows (SET profiling), "
          f"median of {rounds} rounds (min-max); ratio over {base}'s")
    print(f"{'database':32} {'first, ms':>22} {'again, ms':>22} {'index only, ms':>22} {'ratio first/again':>18}")
    for db in databases:
        cells = []
        for kind in ("first", "again", "index"):
            v = times[db][kind]
            cells.append(f"{statistics.median(v) * 1e3:7.2f} ({min(v) * 1e3:.2f}-{max(v) * 1e3:.2f})")
        ratios = "/".join(f"{statistics.median(times[db][k]) / statistics.median(times[base][k]):.2f}"
                          for k in ("first", "again"))
        print(f"{db:32} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22} {ratios:>18}")


if __name__ == "__main__":
    main()
