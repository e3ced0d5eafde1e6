"""What the log says: data quality against rules, anomalies per step, summaries, trends and exports — each one
SQL query on DuckDB over the Delta table (or over rows given)."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from etl_platform.execution_log.models import WriterConfigurationError, WriterValidationError

METRICS = {"duration_secs": "duration", "rows_processed": "rows processed", "validation_rate": "validation rate"}
# Changes smaller than these are never anomalies, however steady the history: a 0.1 s step taking 0.2 s is noise.
MIN_CHANGE = {"duration_secs": 1.0, "rows_processed": 0, "validation_rate": 1.0}
MIN_RELATIVE_CHANGE = 0.10
MAD_SCALE = 0.6745  # MAD of a normal distribution is 0.6745 sigma: z = 0.6745 (x - median) / MAD


def rule_sql(rule: Any) -> str:
    """A validation rule as SQL: a predicate string, or a pyspark ``Column`` (its SQL text)."""
    if isinstance(rule, str):
        text = rule
    else:  # pyspark.sql.Column("duration_secs >= 0"): its expression is the SQL text
        text = str(getattr(rule, "_jc", rule))
        text = re.sub(r"^Column<'(.*)'>$", r"\1", text)
    if ";" in text:
        raise WriterConfigurationError(f"validation rule {text!r}: one SQL predicate, without ';'")
    return text


def validate_quality(conn: duckdb.DuckDBPyConnection, rows: pa.Table, config, validation_rules=None) -> dict:
    """Each row against the built-in rules (counts >= 0, rates in 0-100, run_id set) and ``validation_rules``
    (column → list of SQL predicates); passed when the share of valid rows meets ``min_validation_rate`` and the
    average validation rate of the rows meets it too."""
    rules = {"run_id": ["run_id IS NOT NULL AND run_id <> ''"],
             "duration_secs": ["duration_secs IS NULL OR duration_secs >= 0"],
             "validation_rate": ["validation_rate IS NULL OR validation_rate BETWEEN 0 AND 100"]}
    for column, predicates in (validation_rules or {}).items():
        rules.setdefault(column, [])
        rules[column] += [rule_sql(p) for p in (predicates if isinstance(predicates, list) else [predicates])]
    conn.register("checked_rows", rows)
    checks = [(column, predicate) for column, predicates in rules.items() for predicate in predicates]
    try:
        failing = " OR ".join(f"NOT coalesce(({p}), false)" for _, p in checks)
        invalid = conn.execute(f"SELECT count(*) FILTER (WHERE {failing}), count(*), avg(validation_rate) "
                           f"FROM checked_rows").fetchone()
        failures = conn.execute("SELECT " + ", ".join(f"count(*) FILTER (WHERE NOT coalesce(({p}), false))"
                                                  for _, p in checks) + " FROM checked_rows").fetchone()
    except duckdb.Error as error:
        raise WriterValidationError(f"a validation rule is not valid SQL on the log's columns: "
                                    f"{str(error).splitlines()[0]}", context={"rules": [p for _, p in checks]}) \
            from None
    bad, total, average_rate = invalid
    share = 100.0 * (total - bad) / total if total else 100.0
    threshold_met = share >= config.min_validation_rate and (average_rate is None or
                                                             average_rate >= config.min_validation_rate)
    return {"quality_passed": threshold_met, "validation_rate": round(share, 2), "valid_rows": total - bad,
            "invalid_rows": bad, "threshold_met": threshold_met, "min_validation_rate": config.min_validation_rate,
            "average_row_validation_rate": None if average_rate is None else round(average_rate, 2),
            "validation_rules_applied": [f"{c}: {p}" for c, p in checks],
            "rule_failures": {f"{c}: {p}": n for (c, p), n in zip(checks, failures) if n}}


def detect(conn: duckdb.DuckDBPyConnection, candidates: pa.Table, config) -> list[dict[str, Any]]:
    """Each candidate row's duration, rows processed and validation rate against the history of the same
    (pipeline, step) in ``logs`` — excluding the candidate itself — by robust z-score: 0.6745 (x − median) / MAD.
    A step with fewer than ``anomaly_min_history`` earlier runs is never anomalous; a change smaller than 10 % of the
    median or than ``MIN_CHANGE`` (1 s, 1 point of validation rate) never is; a MAD of 0 (a perfectly steady
    step) makes any larger change anomalous. Asset-check rows are not judged (their outcome is pass/fail)."""
    conn.register("candidates_all", candidates)
    conn.execute("CREATE OR REPLACE TEMP VIEW candidates AS SELECT * FROM candidates_all "
                 "WHERE phase IS DISTINCT FROM 'check'")
    anomalies = []
    for metric, label in METRICS.items():
        rows = conn.execute(f"""
            WITH history AS (
                SELECT c.log_id, c.run_id, c.pipeline_id, c.step_name, c.{metric} AS value,
                       median(h.{metric}) AS center, count(h.{metric}) AS runs
                FROM candidates c JOIN logs h
                  ON h.step_name = c.step_name AND h.pipeline_id IS NOT DISTINCT FROM c.pipeline_id
                 AND h.log_id <> c.log_id AND h.{metric} IS NOT NULL
                WHERE c.{metric} IS NOT NULL
                GROUP BY ALL),
            spread AS (
                SELECT y.log_id, median(abs(h.{metric} - y.center)) AS mad
                FROM history y JOIN logs h
                  ON h.step_name = y.step_name AND h.pipeline_id IS NOT DISTINCT FROM y.pipeline_id
                 AND h.log_id <> y.log_id AND h.{metric} IS NOT NULL
                GROUP BY y.log_id)
            SELECT y.run_id, y.pipeline_id, y.step_name, y.value, y.center, s.mad, y.runs
            FROM history y JOIN spread s USING (log_id)
            WHERE y.runs >= {int(config.anomaly_min_history)}""").fetchall()
        for run_id, pipeline, step, value, center, mad, runs in rows:
            if abs(value - center) <= max(MIN_CHANGE[metric], MIN_RELATIVE_CHANGE * abs(center)):
                continue
            if mad:
                score = MAD_SCALE * (value - center) / mad
                if abs(score) < config.anomaly_threshold:
                    continue
                half_width = config.anomaly_threshold * mad / MAD_SCALE
            else:
                score = float("inf") if value > center else float("-inf")
                half_width = max(MIN_CHANGE[metric], MIN_RELATIVE_CHANGE * abs(center))
            direction = "higher" if value > center else "lower"
            severity = "high" if abs(score) >= 2 * config.anomaly_threshold else "medium"
            anomalies.append({
                "type": f"{metric}_anomaly", "metric": metric, "step_name": step, "pipeline_id": pipeline,
                "run_id": run_id, "value": value, "expected_median": center,
                "expected_range": [round(center - half_width, 4), round(center + half_width, 4)],
                "robust_z_score": None if abs(score) == float("inf") else round(score, 2), "history_runs": runs,
                "severity": severity,
                "description": f"{step}: {label} {value:g} is {direction} than its usual {center:g} "
                               f"(expected {center - half_width:.4g} to {center + half_width:.4g} from {runs} runs)"})
    return anomalies


def summary(conn: duckdb.DuckDBPyConnection, days: int) -> dict[str, Any]:
    total, successes, duration, processed, written, rate, runs = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE success), avg(duration_secs), sum(rows_processed), "
        "sum(rows_written), avg(validation_rate), count(DISTINCT run_id) FROM logs").fetchone()
    if not total:
        return {"report_available": False, "days": days, "reason": f"no log rows in the last {days} days"}
    phases = dict(conn.execute("SELECT coalesce(phase, 'unknown'), count(*) FROM logs GROUP BY ALL ORDER BY 2 DESC")
                  .fetchall())
    slowest = conn.execute("SELECT step_name, round(avg(duration_secs), 3) AS avg_secs, count(*) AS runs FROM logs "
                       "WHERE duration_secs IS NOT NULL GROUP BY ALL ORDER BY avg_secs DESC LIMIT 5").fetchall()
    failures = conn.execute("SELECT step_name, count(*) FROM logs WHERE NOT success GROUP BY ALL ORDER BY 2 DESC "
                        "LIMIT 5").fetchall()
    return {"report_available": True, "days": days, "total_executions": total, "total_runs": runs,
            "successful_executions": successes, "failed_executions": total - successes,
            "success_rate_percent": round(100.0 * successes / total, 2),
            "average_duration_secs": round(duration or 0.0, 3), "total_rows_processed": int(processed or 0),
            "total_rows_written": int(written or 0),
            "average_validation_rate": None if rate is None else round(rate, 2), "phase_distribution": phases,
            "slowest_steps": [{"step_name": s, "average_duration_secs": a, "executions": n} for s, a, n in slowest],
            "most_failing_steps": [{"step_name": s, "failures": n} for s, n in failures]}


TREND_MIN_RUNS = 3
TREND_MIN_SPAN_SECONDS = 86_400  # a slope per day from runs a few minutes apart is noise ("+681 s per day")


def trends(conn: duckdb.DuckDBPyConnection, days: int) -> dict[str, Any]:
    """Mean/stddev/min/max, and per step the slope over time by least squares (seconds per day: is the step
    getting slower?) with the relative change over the window. A step gets a trend once it has
    ``TREND_MIN_RUNS`` runs spanning at least a day."""
    count = conn.execute("SELECT count(*) FROM logs").fetchone()[0]
    if not count:
        return {"trends_available": False, "days": days, "reason": f"no log rows in the last {days} days"}

    def stats(column: str) -> dict[str, float]:
        mean, stddev, low, high = conn.execute(f"SELECT avg({column}), stddev_samp({column}), min({column}), "
                                           f"max({column}) FROM logs").fetchone()
        return {"mean": mean or 0.0, "stddev": stddev or 0.0, "min": low or 0.0, "max": high or 0.0}

    successes = conn.execute("SELECT count(*) FILTER (WHERE success), count(*) FROM logs").fetchone()
    per_step = conn.execute(f"""
        SELECT pipeline_id, step_name, count(*) AS runs,
               regr_slope(duration_secs, epoch(coalesce(start_time, logged_at)) / 86400.0) AS secs_per_day,
               avg(duration_secs) AS mean_secs,
               regr_slope(rows_processed, epoch(coalesce(start_time, logged_at)) / 86400.0) AS rows_per_day
        FROM logs WHERE duration_secs IS NOT NULL GROUP BY ALL
        HAVING count(*) >= {TREND_MIN_RUNS} AND max(epoch(coalesce(start_time, logged_at)))
                                            - min(epoch(coalesce(start_time, logged_at))) >= {TREND_MIN_SPAN_SECONDS}
        ORDER BY secs_per_day DESC
    """).fetchall()
    result = {"trends_available": True, "days": days, "duration_trend": stats("duration_secs"),
              "success_trend": {"success_rate_percent": 100.0 * successes[0] / successes[1],
                                "total_executions": successes[1]},
              "step_trends": [{"pipeline_id": p, "step_name": s, "runs": n,
                               "duration_slope_secs_per_day": round(slope or 0.0, 4),
                               "rows_slope_per_day": round(rows_slope or 0.0, 2),
                               "getting_slower": bool(slope and mean and slope * days > 0.2 * mean)}
                              for p, s, n, slope, mean, rows_slope in per_step]}
    if conn.execute("SELECT count(validation_rate) FROM logs").fetchone()[0]:
        result["validation_trend"] = stats("validation_rate")
    return result


def export(conn: duckdb.DuckDBPyConnection, output_dir: Path, format: str, limit: int | None,
           filters: dict[str, Any] | None) -> dict[str, Any]:
    if format not in ("json", "csv", "parquet"):
        raise WriterConfigurationError(f"format {format!r} is not one of json, csv, parquet")
    where, params = [], []
    for column, value in (filters or {}).items():
        if not re.fullmatch(r"[a-z_]+", column):
            raise WriterConfigurationError(f"filter {column!r} is not a log column")
        where.append(f'"{column}" = ?')
        params.append(value)
    sql = "SELECT * FROM logs" + (" WHERE " + " AND ".join(where) if where else "") + \
        " ORDER BY coalesce(start_time, logged_at)" + (f" LIMIT {int(limit)}" if limit else "")
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"pipeline_logs_{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}.{format}"
    started = time.monotonic()
    try:
        table = conn.sql(sql, params=params).to_arrow_table()
    except duckdb.Error as error:
        raise WriterConfigurationError(f"export filters {json.dumps(filters, default=str)}: "
                                       f"{str(error).splitlines()[0]}") from None
    conn.register("exported", table)
    options = {"json": "FORMAT json, ARRAY true", "csv": "FORMAT csv, HEADER true", "parquet": "FORMAT parquet"}
    conn.execute(f"COPY exported TO '{str(path).replace(chr(39), chr(39) * 2)}' ({options[format]})")
    return {"export_successful": True, "records_exported": table.num_rows, "export_path": str(path),
            "export_size_mb": round(path.stat().st_size / 1e6, 4), "format": format,
            "export_duration_secs": round(time.monotonic() - started, 3)}
