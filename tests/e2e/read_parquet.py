"""Reads a highwater Parquet table directory with pyarrow, an independent reader.

Prints JSON: the Arrow type of each column, every key's newest version (by cursor, NULL
first, then by _hw_written_at; rows whose _hw_op is 'd' removed) in canonical text (see harness.rs), the number of
rows in all files, the number of distinct (key, cursor) versions among them, and the file
names. Usage: read_parquet.py DIR KEY1,KEY2 CURSOR
"""
import json
import pathlib
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def canonical(arr):
    t = arr.type
    if pa.types.is_boolean(t):
        return ["1" if v else "0" if v is not None else None for v in arr.to_pylist()]
    if pa.types.is_date32(t):
        arr = arr.cast(pa.int32())
    elif pa.types.is_timestamp(t) or pa.types.is_duration(t):
        arr = arr.cast(pa.int64())
    values = arr.to_pylist()
    if pa.types.is_decimal(t):
        return [None if v is None else format(v, "f") for v in values]
    if pa.types.is_floating(t):
        return [None if v is None else repr(v) for v in values]
    if pa.types.is_string(t):
        return [None if v is None else v.encode().hex().upper() for v in values]
    if pa.types.is_binary(t) or pa.types.is_fixed_size_binary(t):
        return [None if v is None else v.hex().upper() for v in values]
    return [None if v is None else str(v) for v in values]


def main():
    root, keys, cursor = pathlib.Path(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
    files = sorted(p for p in root.rglob("*.parquet") if not p.name.startswith("."))
    types, newest, file_rows, versions = {}, {}, 0, set()
    for path in files:
        table = pq.read_table(path)
        file_rows += table.num_rows
        names = [n for n in table.column_names if n not in ("_hw_op", "_hw_written_at")]
        types = {n: str(table.schema.field(n).type) for n in names}
        cols = {n: canonical(table.column(n).combine_chunks()) for n in names}
        order = table.column(cursor).cast(pa.int64()).to_pylist()
        ops = table.column("_hw_op").to_pylist()
        written = table.column("_hw_written_at").cast(pa.int64()).to_pylist()
        for i in range(table.num_rows):
            key = "|".join(cols[k][i] or "" for k in keys)
            # Newest by cursor; of equal cursors, the later written (a row re-read after it
            # changed in place).
            rank = (-(2**63) if order[i] is None else order[i], written[i])
            versions.add((key, rank[0]))
            if key not in newest or rank >= newest[key][0]:
                newest[key] = (rank, ops[i], [cols[n][i] for n in names])
    rows = {k: v[2] for k, v in newest.items() if v[1] != "d"}
    json.dump({"types": types, "rows": rows, "file_rows": file_rows, "versions": len(versions),
               "files": [str(p.relative_to(root)) for p in files]}, sys.stdout)


main()
