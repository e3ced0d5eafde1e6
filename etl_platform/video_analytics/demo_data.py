"""Deterministic demo input for the video-analytics pipeline, optionally with every contract defect.

Columns are drawn and formatted with Arrow's compute kernels (``pyarrow.compute.random``: no numpy), and
sessions are written in chunks, so 10 million sessions take well under a minute and memory stays flat. The same
seed gives byte-identical files.

With ``defects=True`` a small share of extra rows breaks each rule the contract names (see
``DEFECT_KINDS``); every defect row is on top of the clean rows, so the clean data stays complete.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from tqdm import tqdm

from etl_platform.arrow_columns import row_numbers
from etl_platform.video_analytics import contract

CHUNK_ROWS = 1_000_000
SESSIONS_PER_FILE = 5_000_000
SESSIONS_PER_USER = 20
SESSIONS_PER_CONTENT = 1_000
DEFECT_SHARE = 0.01
EPOCH = pa.scalar(datetime(2024, 1, 1), pa.timestamp("s"))
SIGNUP_EPOCH = pa.scalar(datetime(2021, 1, 1), pa.timestamp("s"))
VIEWING_WINDOW_SECONDS = 90 * 24 * 3600

FIRST_NAMES = ["Ana", "Ben", "Chloé", "Dmitri", "Eve", "François", "Grace", "Hiro", "Inès", "José", "Kai", "Lena",
               "Mia", "Noah", "Olga", "Priya", "Quinn", "Raúl", "Sofia", "Tom", "Uma", "Zoë", "李", "Ørjan"]
LAST_NAMES = ["Smith", "Müller", "García", "Rossi", "Dubois", "Kowalski", "Nakamura", "Silva", "O'Brien", "Ng",
              "Jensen", "Novák", "Öztürk", "Haddad", "Kim", "Patel", "王", "Łukasz", "Ibáñez", "Brown"]
COUNTRIES = ["US", "GB", "DE", "FR", "BR", "IN", "JP", "CA", "ES", "MX"]
TIERS = ["free", "basic", "premium"]
DEVICES = ["tv", "mobile", "web", "tablet"]
GENRES = ["drama", "comedy", "action", "documentary", "thriller", "animation", "romance", "sci-fi", "horror"]
CONTENT_TYPES = ["movie", "series", "documentary", "short"]
AGE_RATINGS = ["G", "PG", "PG-13", "R", "TV-MA"]

# What --defects puts in, by entity. Each kind is injected at least once.
DEFECT_KINDS = {
    "users": ["invalid_user_id", "invalid_signup_date", "duplicate_key_newer", "duplicate_key_null_updated_at",
              "exact_duplicate", "mixed_case", "tricky_text", "bom", "empty_fields"],
    "content": ["malformed_json", "invalid_content_id", "missing_release", "null_release", "empty_genres",
                "no_lead", "non_integer_duration", "mixed_case_type", "duplicate_key_newer"],
    "viewing_sessions": ["invalid_session_id", "invalid_timestamp", "negative_duration", "invalid_completion_pct",
                         "completion_out_of_range", "orphan_user", "orphan_content", "duplicate_key_later_end",
                         "exact_duplicate", "mixed_case_device", "exponent_completion", "empty_completion"],
}


@dataclass(frozen=True)
class DemoSummary:
    folder: Path
    users: int
    content: int
    sessions: int
    defect_rows: dict[str, int]
    files: list[str]


def sizes(sessions: int) -> tuple[int, int]:
    """Users and content items for a given number of sessions."""
    return max(50, sessions // SESSIONS_PER_USER), max(20, sessions // SESSIONS_PER_CONTENT)


def generate(
    folder: Path, sessions: int, seed: int = 42, defects: bool = False, progress: bool = True
) -> DemoSummary:
    """Write ``users*.csv``, ``content*.jsonl`` and ``viewing_sessions*.csv`` into ``folder``."""
    if sessions < 1:
        raise ValueError(f"sessions must be at least 1, got {sessions}")
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("users*.csv"), *folder.glob("content*.jsonl"), *folder.glob("viewing_sessions*.csv")]:
        old.unlink()
    n_users, n_content = sizes(sessions)
    draws = Draws(seed)
    files: list[str] = []
    defect_rows: dict[str, int] = {}
    defect_rows["users"] = _write_users(folder, n_users, draws.child("users"), defects, files)
    defect_rows["content"] = _write_content(folder, n_content, draws.child("content").python, defects, files)
    defect_rows["viewing_sessions"] = _write_sessions(
        folder, sessions, n_users, n_content, draws.child("sessions"), draws.child("session_defects"), defects,
        progress, files
    )
    _mark_complete(folder, files)
    return DemoSummary(folder, n_users, n_content, sessions, defect_rows if defects else {}, files)


def _mark_complete(folder: Path, files: list[str]) -> None:
    """The files are whole once written here: date them one settle time back (``ETL_PLATFORM_SETTLE_SECONDS``,
    10 s by default) so the first run after ``demo-data`` does not wait for files it knows are complete. (A run
    waits for a file modified less than a settle time ago, in case its writer is still at it.)"""
    import os
    import time

    from etl_platform.landing.files import LandingZone

    settled_at = time.time() - LandingZone(root=str(folder)).settle_time - 1
    for name in files:
        os.utime(folder / name, (settled_at, settled_at))


# ---------------------------------------------------------------- helpers


class Draws:
    """Random draws derived from a seed and a path of names: Arrow arrays (``pyarrow.compute.random``, a new
    seed per call) and Python values (``python``, a ``random.Random``). The same seed and path draw the same."""

    def __init__(self, seed: int, path: tuple = ()):
        self._seed, self._path, self._calls = seed, path, 0
        self.python = random.Random(self._derive("python"))

    def _derive(self, name: object) -> int:
        text = "/".join(map(str, (self._seed, *self._path, name)))
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")

    def child(self, *names: object) -> Draws:
        return Draws(self._seed, (*self._path, *names))

    def uniform(self, n: int) -> pa.DoubleArray:
        """``n`` doubles in [0, 1)."""
        self._calls += 1
        return pc.random(n, initializer=self._derive(self._calls))

    def integers(self, low: int, high: int, n: int) -> pa.Int64Array:
        """``n`` integers in [low, high), each equally likely."""
        span = high - low
        scaled = pc.cast(pc.floor(pc.multiply(self.uniform(n), span)), pa.int64())
        return pc.add(pc.min_element_wise(scaled, span - 1), low)  # (a double's rounding could reach span)

    def below(self, share: float, n: int) -> pa.BooleanArray:
        """``n`` booleans, each true with probability ``share``."""
        return pc.less(self.uniform(n), share)

    def pick(self, options: list[str], n: int) -> pa.StringArray:
        return pa.array(options, pa.string()).take(self.integers(0, len(options), n))


def _iso(seconds: pa.Int64Array, epoch: pa.TimestampScalar = EPOCH, form: str = "%Y-%m-%dT%H:%M:%SZ") -> pa.Array:
    """ISO-8601 UTC text ('2024-01-01T00:00:00Z', or ``form``) for seconds since ``epoch``."""
    return pc.strftime(pc.add(epoch, seconds.cast(pa.duration("s"))), format=form)


def _text(values: pa.Array) -> pa.Array:
    return pc.cast(values, pa.string())


def _write_csv(path: Path, table: pa.Table, mode: str = "wb", bom: bool = False) -> None:
    with open(path, mode) as handle:
        if mode == "wb":
            handle.write(("\ufeff" if bom else "").encode() + (",".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, handle, pacsv.WriteOptions(include_header=False, quoting_style="needed"))


def _rows_table(columns: tuple[str, ...], rows: list[dict]) -> pa.Table:
    return pa.table({c: pa.array([row.get(c) for row in rows], pa.string()) for c in columns})


def _interleave(clean: pa.Table, extra: pa.Table, draws: Draws) -> pa.Table:
    """``clean`` with the rows of ``extra`` inserted at random places (both keep their order)."""
    if extra.num_rows == 0:
        return clean
    # Clean row i sorts at 2i + 1; the extra rows, in their order, go before clean rows p drawn and sorted, at 2p
    # (p = the row count: at the end). The sort is stable: extra rows before the same clean row keep their order.
    before = draws.integers(0, clean.num_rows + 1, extra.num_rows)
    places = pa.concat_arrays([pc.add(pc.multiply(row_numbers(0, clean.num_rows), 2), 1),
                               pc.multiply(before.take(pc.sort_indices(before)), 2)])
    return pa.concat_tables([clean, extra]).take(pc.sort_indices(places))


def _defect_count(clean_rows: int, kinds: list[str]) -> int:
    return max(len(kinds), int(clean_rows * DEFECT_SHARE))


def _cycle(kinds: list[str], count: int) -> list[str]:
    return [kinds[i % len(kinds)] for i in range(count)]


# ---------------------------------------------------------------- users


def _users_table(n: int, draws: Draws) -> pa.Table:
    id_text = _text(row_numbers(1, n))
    signup_seconds = pc.multiply(draws.integers(0, 3 * 365, n), 86400)
    signup = _iso(signup_seconds, SIGNUP_EPOCH, "%Y-%m-%d")
    updated_seconds = pc.add(pc.subtract(signup_seconds, 3 * 365 * 86400), draws.integers(0, 86400 * 30, n))
    birth = draws.integers(1950, 2009, n)
    birth_text = pc.if_else(draws.below(0.05, n), pa.scalar(None, pa.string()), _text(birth))
    names = pc.binary_join_element_wise(draws.pick(FIRST_NAMES, n), draws.pick(LAST_NAMES, n), " ")
    return pa.table({
        "user_id": id_text,
        "email": pc.binary_join_element_wise("user", id_text, "@example.com", ""),
        "name": names,
        "country": draws.pick(COUNTRIES, n),
        "subscription_tier": draws.pick(TIERS, n),
        "signup_date": signup,
        "birth_year": birth_text,
        "updated_at": _iso(updated_seconds),
    })


def _user_defects(n_users: int, rng: random.Random, clean: pa.Table) -> tuple[list[dict], list[dict]]:
    """Defect rows for the first users file, and the second file (later updates)."""
    first, second = [], []
    kinds = [k for k in DEFECT_KINDS["users"] if k != "bom"]
    good = clean.slice(0, min(clean.num_rows, 1000)).to_pylist()
    for i, kind in enumerate(_cycle(kinds, _defect_count(n_users, kinds))):
        base = dict(good[rng.randrange(len(good))])
        if kind == "invalid_user_id":
            base["user_id"] = ["abc", "-5", "0", "12.5", "1e3", ""][i % 6]
            first.append(base)
        elif kind == "invalid_signup_date":
            base["user_id"] = str(n_users + 1 + i)
            base["signup_date"] = ["2024-02-30", "03/04/2021", "", "2021-1-5"][i % 4]
            first.append(base)
        elif kind == "duplicate_key_newer":
            base["email"] = base["email"].upper()
            base["subscription_tier"] = "premium"
            base["updated_at"] = "2024-06-01T12:00:00+02:00"
            second.append(base)
        elif kind == "duplicate_key_null_updated_at":
            base["subscription_tier"] = "basic"
            base["updated_at"] = ""
            second.append(base)
        elif kind == "exact_duplicate":
            first.append(base)
        elif kind == "mixed_case":
            base["user_id"] = str(n_users + 1 + i)
            base["email"] = f"MiXeD.{i}@Example.COM"
            base["country"] = "us"
            base["subscription_tier"] = [" PREMIUM ", "Free", "gold", ""][i % 4]
            second.append(base)
        elif kind == "tricky_text":
            base["user_id"] = str(n_users + 1 + i)
            base["name"] = f'  O\'Brien, "Jack" {i}\nZoë Ñandú 李  '  # quote, comma, newline, non-ASCII, spaces
            second.append(base)
        elif kind == "empty_fields":
            base["user_id"] = str(n_users + 1 + i)
            base["email"] = base["country"] = base["birth_year"] = " "
            second.append(base)
    return first, second


def _write_users(folder: Path, n_users: int, draws: Draws, defects: bool, files: list[str]) -> int:
    clean = _users_table(n_users, draws)
    first, second = _user_defects(n_users, draws.python, clean) if defects else ([], [])
    table = _interleave(clean, _rows_table(contract.USERS_COLUMNS, first), draws)
    _write_csv(folder / "users_0001.csv", table, bom=defects)
    files.append("users_0001.csv")
    if second:
        _write_csv(folder / "users_0002.csv", _rows_table(contract.USERS_COLUMNS, second))
        files.append("users_0002.csv")
    return len(first) + len(second)


# ---------------------------------------------------------------- content


def _content_item(content_id: int, rng: random.Random) -> dict:
    genres = rng.sample(GENRES, rng.randint(1, 3))
    cast = [{"name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}", "role": "lead" if j == 0 else "support"}
            for j in range(rng.randint(1, 4))]
    return {
        "content_id": content_id,
        "title": f"Title {content_id}",
        "type": rng.choice(CONTENT_TYPES),
        "genres": genres,
        "release": {"year": rng.randint(1970, 2024), "country": rng.choice(COUNTRIES)},
        "duration_minutes": rng.randint(5, 180),
        "cast": cast,
        "ratings": {"imdb": round(rng.uniform(1, 10), 1), "age_rating": rng.choice(AGE_RATINGS)},
        "updated_at": "2024-01-01T00:00:00Z",
    }


def _content_defect(kind: str, i: int, n_content: int, rng: random.Random) -> str:
    item = _content_item(n_content + 1 + i, rng)
    if kind == "malformed_json":
        return '{"content_id": %d, "title": "Broken line' % (n_content + 1 + i)
    if kind == "invalid_content_id":
        item["content_id"] = ["abc", 12.5, None][i % 3]
    elif kind == "missing_release":
        del item["release"]
    elif kind == "null_release":
        item["release"] = None
    elif kind == "empty_genres":
        item["genres"] = []
    elif kind == "no_lead":
        item["cast"] = [{"name": "Extra Person", "role": "support"}]
    elif kind == "non_integer_duration":
        item["duration_minutes"] = "90 min"
    elif kind == "mixed_case_type":
        item["type"] = " MOVIE "
        item["title"] = "  Ünïcode, \"quoted\" title  "
    elif kind == "duplicate_key_newer":
        item["content_id"] = rng.randint(1, n_content)
        item["title"] = f"Title {item['content_id']} (remastered)"
        item["updated_at"] = "2024-06-01T00:00:00Z"
    return json.dumps(item, ensure_ascii=False)


def _write_content(folder: Path, n_content: int, rng: random.Random, defects: bool, files: list[str]) -> int:
    lines = [json.dumps(_content_item(i, rng), ensure_ascii=False) for i in range(1, n_content + 1)]
    extra = []
    if defects:
        kinds = DEFECT_KINDS["content"]
        extra = [_content_defect(kind, i, n_content, rng) for i, kind in enumerate(_cycle(kinds, _defect_count(n_content, kinds)))]
    (folder / "content_0001.jsonl").write_text("\n".join(lines + extra) + "\n", encoding="utf-8")
    files.append("content_0001.jsonl")
    return len(extra)


# ---------------------------------------------------------------- sessions


def _sessions_table(first_id: int, n: int, n_users: int, n_content: int, draws: Draws) -> pa.Table:
    started = draws.integers(0, VIEWING_WINDOW_SECONDS, n)
    duration = draws.integers(60, 3 * 3600, n)
    completion = pc.divide(pc.cast(draws.integers(0, 1001, n), pa.float64()), 10)
    completion_text = pc.if_else(draws.below(0.03, n), pa.scalar(None, pa.string()), _text(completion))
    return pa.table({
        "session_id": _text(row_numbers(first_id, n)),
        "user_id": _text(draws.integers(1, n_users + 1, n)),
        "content_id": _text(draws.integers(1, n_content + 1, n)),
        "started_at": _iso(started),
        "ended_at": _iso(pc.add(started, duration)),
        "device": draws.pick(DEVICES, n),
        "completion_pct": completion_text,
    })


def _session_defects(clean: pa.Table, sessions: int, n_users: int, n_content: int, rng: random.Random,
                     count: int, first_defect_id: int) -> pa.Table:
    kinds = DEFECT_KINDS["viewing_sessions"]
    sample = clean.slice(0, min(clean.num_rows, 1000)).to_pylist()
    edits: dict[str, Callable[[dict, int], None]] = {
        "invalid_session_id": lambda r, i: r.update(session_id=["abc", "12.5", "", "0x10"][i % 4]),
        "invalid_timestamp": lambda r, i: r.update(started_at="not a time") if i % 2 else r.update(
            ended_at="2024-13-01T00:00:00Z"),
        "negative_duration": lambda r, i: r.update(started_at=r["ended_at"], ended_at=r["started_at"]),
        "invalid_completion_pct": lambda r, i: r.update(completion_pct=["n/a", "NaN", "inf", "12,5"][i % 4]),
        "completion_out_of_range": lambda r, i: r.update(completion_pct=["150", "-5", "100.5"][i % 3]),
        "orphan_user": lambda r, i: r.update(user_id=str(n_users + 1_000_000 + i)),
        "orphan_content": lambda r, i: r.update(content_id=str(n_content + 1_000_000 + i)),
        "mixed_case_device": lambda r, i: r.update(device=[" TV ", "Mobile", "SmartFridge", ""][i % 4]),
        "exponent_completion": lambda r, i: r.update(completion_pct="1e1"),
        "empty_completion": lambda r, i: r.update(completion_pct="  "),
    }
    rows = []
    for i, kind in enumerate(_cycle(kinds, count)):
        row = dict(sample[rng.randrange(len(sample))])
        if kind == "exact_duplicate":
            rows.append(row)
            continue
        if kind == "duplicate_key_later_end":
            row["ended_at"] = row["ended_at"].replace("Z", ".5+00:00")  # same session_id, ends half a second later
            rows.append(row)
            continue
        row["session_id"] = str(first_defect_id + i)  # a fresh id, so only the intended rule is broken
        edits[kind](row, i)
        rows.append(row)
    return _rows_table(contract.SESSIONS_COLUMNS, rows)


def _write_sessions(folder, sessions, n_users, n_content, draws: Draws, defect_draws: Draws, defects, progress,
                    files) -> int:
    defects_written = 0
    defect_budget = _defect_count(sessions, DEFECT_KINDS["viewing_sessions"]) if defects else 0
    with tqdm(total=sessions, unit=" sessions", desc="viewing_sessions", disable=not progress, unit_scale=True) as bar:
        for chunk_index, first in enumerate(range(0, sessions, CHUNK_ROWS)):
            n = min(CHUNK_ROWS, sessions - first)
            table = _sessions_table(first + 1, n, n_users, n_content, draws.child(chunk_index))
            if defects:
                share = defect_budget * (first + n) // sessions - defects_written
                extra = _session_defects(table, sessions, n_users, n_content, defect_draws.python, share,
                                         first_defect_id=sessions + 1 + defects_written)
                defects_written += extra.num_rows
                table = _interleave(table, extra, defect_draws)
            file_number = first // SESSIONS_PER_FILE + 1
            name = f"viewing_sessions_{file_number:04d}.csv"
            new_file = first % SESSIONS_PER_FILE == 0
            _write_csv(folder / name, table, mode="wb" if new_file else "ab")
            if new_file:
                files.append(name)
            bar.update(n)
    return defects_written
