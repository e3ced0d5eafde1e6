"""Benchmark: the schema transformer against a plain per-record Python loop doing the same mapping, side by side.

    .venv/bin/python bench/transform.py --records 1000000 --repeats 3

Records: 10 output fields, 2 nested levels (``customer.address.city``), a date in ``%d/%m/%Y`` text, a timestamp,
integers and numbers given as text, a default, an enum, an array. Both sides produce the same rows (checked on the
first 1,000) and set aside the same bad records (every 1,000th has a bad date).

  ours (Arrow in):   SchemaTransformer.transform_table(table) — records as they come from the platform's readers
  ours (dicts in):   SchemaTransformer.transform(list of dicts) — seed 000's form, conversion to Arrow included
  Python loop:       for record in records: {...} with int(), float(), datetime.strptime, a try/except per record
Runs alternate; medians; ratio = loop seconds / ours seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etl_platform.destinations.tables import table_of_records  # noqa: E402
from etl_platform.transform import SchemaTransformer  # noqa: E402

SCHEMA = {
    "type": "object",
    "required": ["order_id"],
    "properties": {
        "order_id": {"type": "integer", "source": "id"},
        "amount": {"type": "number", "source": "payment.amount"},
        "currency": {"type": "string", "source": "payment.currency", "default": "EUR", "enum": ["EUR", "USD", "NOK"]},
        "ordered_on": {"type": "date", "source": "date", "format": "%d/%m/%Y"},
        "updated_at": {"type": "timestamp", "source": "updated"},
        "customer_id": {"type": "integer", "source": "customer.id"},
        "customer_name": {"type": "string", "source": "customer.name"},
        "city": {"type": "string", "source": "customer.address.city"},
        "country": {"type": "string", "source": "customer.address.country"},
        "items": {"type": "array", "source": "items", "items": {"type": "string"}},
    },
}


def records(count: int) -> list[dict]:
    out = []
    for i in range(count):
        out.append({
            "id": str(i),
            "payment": {"amount": f"{i % 997}.{i % 100:02d}", "currency": ("EUR", "USD", "NOK", None)[i % 4]},
            "date": "31/02/2024" if i % 1000 == 999 else f"{1 + i % 28:02d}/{1 + i % 12:02d}/2024",
            "updated": f"2024-05-{1 + i % 28:02d}T10:{i % 60:02d}:00+00:00",
            "customer": {"id": i % 50_000, "name": f"customer {i % 50_000}",
                         "address": {"city": ("Oslo", "Bergen", "Rome")[i % 3], "country": "NO"}},
            "items": ["sku-1", "sku-2"][: 1 + i % 2],
        })
    return out


def python_loop(data: list[dict]) -> tuple[list[dict], list[tuple[int, str]]]:
    good, bad = [], []
    for position, record in enumerate(data):
        try:
            payment = record.get("payment") or {}
            customer = record.get("customer") or {}
            address = customer.get("address") or {}
            currency = payment.get("currency") or "EUR"
            if currency not in ("EUR", "USD", "NOK"):
                raise ValueError(f"currency: {currency!r} not allowed")
            if record.get("id") is None:
                raise ValueError("order_id: required but missing")
            good.append({
                "order_id": int(record["id"]),
                "amount": float(payment["amount"]) if payment.get("amount") is not None else None,
                "currency": currency,
                "ordered_on": datetime.strptime(record["date"], "%d/%m/%Y").date() if record.get("date") else None,
                "updated_at": datetime.fromisoformat(record["updated"]).astimezone(timezone.utc)
                if record.get("updated") else None,
                "customer_id": int(customer["id"]) if customer.get("id") is not None else None,
                "customer_name": customer.get("name"),
                "city": address.get("city"),
                "country": address.get("country"),
                "items": [str(item) for item in record["items"]] if record.get("items") is not None else None,
            })
        except (ValueError, TypeError, KeyError) as error:
            bad.append((position, str(error)))
    return good, bad


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = records(args.records)
    table = table_of_records(data)
    transformer = SchemaTransformer(SCHEMA)
    loop_good, loop_bad = python_loop(data[:1000])
    ours_good = transformer.transform(data[:1000])
    assert len(ours_good) == len(loop_good) and [q["record"] for q in transformer.quarantine] == [p for p, _ in loop_bad]
    for ours_row, loop_row in zip(ours_good, loop_good):
        assert {k: v.astimezone(timezone.utc) if isinstance(v, datetime) else v for k, v in ours_row.items()} == \
            loop_row, (ours_row, loop_row)
    times: dict[str, list[float]] = {"ours (Arrow in)": [], "ours (dicts in, dicts out)": [], "Python loop": []}
    for _ in range(args.repeats):
        started = time.perf_counter()
        good, bad = transformer.transform_table(table)
        times["ours (Arrow in)"].append(time.perf_counter() - started)
        started = time.perf_counter()
        transformer.transform(data)
        times["ours (dicts in, dicts out)"].append(time.perf_counter() - started)
        started = time.perf_counter()
        python_loop(data)
        times["Python loop"].append(time.perf_counter() - started)
    assert good.num_rows == args.records - args.records // 1000 and bad.num_rows == args.records // 1000
    loop = statistics.median(times["Python loop"])
    print(f"{args.records:,} nested records, medians of {args.repeats}, input {table.nbytes / 1e6:.0f} MB as Arrow")
    for name, values in times.items():
        seconds = statistics.median(values)
        print(f"{name:<28} {seconds:7.2f} s   loop/ours {loop / seconds:6.1f}x")


if __name__ == "__main__":
    sys.exit(main())
