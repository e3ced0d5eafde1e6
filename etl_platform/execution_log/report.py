"""The platform-health report: a markdown summary of the log and a PNG chart (duration and rows per step over the
last days, anomalies marked), shown by the ``ops/pipeline_health`` asset and ``etl-platform report``."""

from __future__ import annotations

import math
from pathlib import Path

from etl_platform.execution_log import analytics


def anomalies_in_window(writer, days: int) -> list[dict]:
    """Every row of the window judged against its step's other runs (each row left out of its own history)."""
    with writer.table.sql(days) as conn:
        candidates = conn.sql("SELECT * FROM logs WHERE phase <> 'check'").to_arrow_table()
        return analytics.detect(conn, candidates, writer.config)


def markdown(writer, days: int = 30, anomalies: list[dict] | None = None) -> str:
    """The report; ``anomalies`` of the window when the caller has them already."""
    summary = writer.generate_summary_report(days=days)
    if not summary["report_available"]:
        return f"# Pipeline health, last {days} days\n\nNo runs logged yet."
    trends = writer.analyze_performance_trends(days=days)
    anomalies = anomalies_in_window(writer, days) if anomalies is None else anomalies
    lines = [f"# Pipeline health, last {days} days", "",
             f"- **{summary['total_runs']:,} runs**, {summary['total_executions']:,} logged steps and checks; "
             f"success rate **{summary['success_rate_percent']} %** ({summary['failed_executions']} failed)",
             f"- rows processed {summary['total_rows_processed']:,}, written {summary['total_rows_written']:,}; "
             f"average validation rate {summary['average_validation_rate'] if summary['average_validation_rate'] is not None else 'n/a'} %",
             f"- average step duration {summary['average_duration_secs']} s", ""]
    if anomalies:
        lines += ["## Anomalies", "", "| step | run | metric | value | expected | severity |", "|---|---|---|---:|---|---|"]
        for a in sorted(anomalies, key=lambda a: (a["severity"] != "high", a["step_name"]))[:20]:
            low, high = a["expected_range"]
            lines.append(f"| {a['step_name']} | {a['run_id'][:8]} | {a['metric']} | {a['value']:g} | "
                         f"{low:.4g} – {high:.4g} | {a['severity']} |")
        lines.append("")
    else:
        lines += ["No anomalies: every step's duration, rows and validation rate are within its usual range.", ""]
    slower = [s for s in trends.get("step_trends", []) if s["getting_slower"]]
    if slower:
        lines += ["## Getting slower", "", "| step | runs | seconds per day |", "|---|---:|---:|"]
        lines += [f"| {s['step_name']} | {s['runs']} | +{s['duration_slope_secs_per_day']} |" for s in slower[:10]]
        lines.append("")
    if summary["most_failing_steps"]:
        lines += ["## Failures", "", "| step | failures |", "|---|---:|"]
        lines += [f"| {f['step_name']} | {f['failures']} |" for f in summary["most_failing_steps"]]
        lines.append("")
    lines += ["## Slowest steps", "", "| step | average s | runs |", "|---|---:|---:|"]
    lines += [f"| {s['step_name']} | {s['average_duration_secs']} | {s['executions']} |" for s in summary["slowest_steps"]]
    return "\n".join(lines) + "\n"


def chart(writer, days: int, path: Path, top_steps: int = 8, anomalies: list[dict] | None = None) -> Path | None:
    """Duration and rows written per step over time (the ``top_steps`` slowest steps), anomalies ringed in red,
    as a PNG at ``path``. None when nothing is logged in the window."""
    from etl_platform.execution_log.chart import Panel, Series, draw

    with writer.table.sql(days) as conn:
        rows = conn.execute("""
            WITH steps AS (SELECT step_name FROM logs WHERE phase <> 'check' AND duration_secs IS NOT NULL
                           GROUP BY ALL ORDER BY avg(duration_secs) DESC LIMIT ?)
            SELECT step_name, coalesce(start_time, logged_at), duration_secs, rows_written, run_id
            FROM logs JOIN steps USING (step_name) ORDER BY 2""", [top_steps]).fetchall()
    if not rows:
        return None
    anomalies = anomalies_in_window(writer, days) if anomalies is None else anomalies
    flagged = {(a["step_name"], a["run_id"], a["metric"]) for a in anomalies}
    durations, written = [], []
    for step in dict.fromkeys(r[0] for r in rows):
        points = [r for r in rows if r[0] == step]
        timed = [p for p in points if p[2] is not None and math.isfinite(p[2])]  # a run without a duration: no dot
        durations.append(Series(step, [(p[1], p[2]) for p in timed],
                                {i for i, p in enumerate(timed) if (step, p[4], "duration_secs") in flagged}))
        written.append(Series(step, [(p[1], p[3] or 0) for p in points],
                              {i for i, p in enumerate(points) if (step, p[4], "rows_processed") in flagged}))
    return draw([Panel("duration (s)", durations), Panel("rows written", written)],
                f"Steps over the last {days} days (red circles: anomalies)", path)
