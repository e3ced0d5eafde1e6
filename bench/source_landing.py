"""Landing sources in bronze: the cost of the write dispositions, this tree against another, side by side.

    .venv/bin/python bench/source_landing.py --rows 2000000 --repeat 3 [--against /path/to/other/checkout]

Three landings, each in its own process (imports not timed), on a fresh DuckDB file:
- ``files``: a folder of 8 parquet files (id, customer, amount, note) read whole (replace_by_file), then again
  after one file changed;
- ``append_identity``: a queue-like source (``_message_id``) delivering the rows, then the rows again plus 10 %
  new (a redelivery after a crash: the duplicates must not land);
- ``append_count``: rows without identity read by a cursor, then the last 10 % read again plus 10 % new.

``--against`` runs the same programs with another checkout's ``etl_platform`` first on ``sys.path`` (e.g. the
main before a change), so both are measured in one run; medians and the ratio are printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

PROGRAM = """
import json, os, sys, time, tempfile
sys.path.insert(0, TREE)
import duckdb, numpy as np, pyarrow as pa, pyarrow.parquet as pq
from etl_platform.sources import FileSource, ingest
from etl_platform.sources.base import Extraction, LandingPlan, Source, SourceBatch

ROWS = int(os.environ["BENCH_ROWS"])
work = tempfile.mkdtemp()

def table(start, count):
    ids = np.arange(start, start + count, dtype=np.int64)
    return pa.table({"id": ids, "customer": ids % 997, "amount": (ids % 10_000) / 100.0,
                     "note": pa.array(["order %d" % (i % 1000) for i in range(count)])})

class Replay(Source):
    kind = "bench"
    identity: bool = True
    start: int = 0
    count: int = 0
    def landing_plan(self):
        return LandingPlan("append", ("_message_id",)) if self.identity else LandingPlan("append")
    def extract(self, state=None):
        source = self
        class Read(Extraction):
            def _batches(self):
                for offset in range(source.start, source.start + source.count, 100_000):
                    piece = table(offset, min(100_000, source.start + source.count - offset))
                    if source.identity:
                        piece = piece.append_column("_message_id", pa.array(["m%d" % i for i in piece["id"].to_pylist()]))
                    piece = piece.append_column("_source_position", pa.array(np.arange(piece.num_rows)))
                    for batch in piece.to_batches():
                        yield SourceBatch(batch)
        return Read(state)

def timed(action):
    started = time.perf_counter()
    action()
    return time.perf_counter() - started

warehouse = duckdb.connect(os.path.join(work, "w.duckdb"))
result = {}
if CASE == "files":
    folder = os.path.join(work, "files"); os.makedirs(folder)
    per = ROWS // 8
    for n in range(8):
        pq.write_table(table(n * per, per), os.path.join(folder, "part-%d.parquet" % n))
    source = FileSource(url=folder, glob="*.parquet")
    result["first"] = timed(lambda: ingest(warehouse, source, "orders"))
    pq.write_table(table(0, per + 1000), os.path.join(folder, "part-0.parquet"))
    result["again"] = timed(lambda: ingest(warehouse, source, "orders"))
    assert warehouse.execute("SELECT count(*) FROM bronze.orders").fetchone()[0] == ROWS + 1000
else:
    identity = CASE == "append_identity"
    first = Replay(identity=identity, start=0, count=ROWS)
    result["first"] = timed(lambda: ingest(warehouse, first, "events"))
    tenth = ROWS // 10
    again = Replay(identity=identity, start=ROWS - tenth if not identity else 0,
                   count=(2 * tenth if not identity else ROWS + tenth))
    result["again"] = timed(lambda: ingest(warehouse, again, "events"))
print(json.dumps(result))
"""


def run(tree: Path, case: str, rows: int) -> dict:
    code = textwrap.dedent(PROGRAM).replace("TREE", repr(str(tree))).replace("CASE ==", f"{case!r} ==")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(code)
    output = subprocess.run([sys.executable, handle.name], capture_output=True, text=True,
                            env={"BENCH_ROWS": str(rows), "PATH": "/usr/bin:/bin"})
    if output.returncode:
        raise SystemExit(f"{tree} {case} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--against", type=Path, default=None, help="another checkout to compare with")
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1]
    trees = {"this tree": here} | ({"against": args.against.resolve()} if args.against else {})
    times: dict = {}
    for _ in range(args.repeat):  # interleaved: the machine's noise falls on both alike
        for case in ("files", "append_identity", "append_count"):
            for label, tree in trees.items():
                for phase, seconds in run(tree, case, args.rows).items():
                    times.setdefault((case, phase, label), []).append(seconds)
    print(f"{args.rows:,} rows, medians of {args.repeat}")
    print(f"{'case':<18}{'phase':<8}" + "".join(f"{label:>12}" for label in trees) + ("       ratio" if len(trees) > 1 else ""))
    for case in ("files", "append_identity", "append_count"):
        for phase in ("first", "again"):
            medians = [statistics.median(times[(case, phase, label)]) for label in trees]
            ratio = f"{medians[0] / medians[1]:>11.2f}x" if len(medians) > 1 else ""
            print(f"{case:<18}{phase:<8}" + "".join(f"{m:>11.2f}s" for m in medians) + ratio)


if __name__ == "__main__":
    main()
