"""Every finished Dagster run into the execution log, without the asset author doing anything.

``sync_runs(instance, writer)`` reads the runs that finished (success, failure, cancel) from the instance's run and
event storage and writes one row per materialization, per asset check and per failed step without one:

- times from the step's STEP_START and STEP_SUCCESS/STEP_FAILURE events, the run's tags for the mode
  (schedule, sensor, backfill, manual) and the partition;
- rows from the asset's metadata: processed = ``records_read`` / ``rows_read`` / ``rows_loaded``, else the rows
  written plus those quarantined; written = ``records_written`` / ``rows_written`` / ``dagster/row_count``;
  invalid = ``quarantined_rows`` / ``records_quarantined`` / ``rows_quarantined``; the validation rate follows.

Each row's ``log_id`` is ``<run id>:<step>:<asset or check>``, and rows are added with one MERGE that skips ids
already there, so syncing again after a crash or a restart neither loses nor doubles a row. It runs from the
sensor ``execution_log_sensor`` (with the daemon; ``sync_runs_after``: only the runs finished since its cursor) and
before every read of the report and the health asset (so runs started from the CLI without a daemon are in the
log by then).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import dagster as dg

PROCESSED_KEYS = ("records_read", "rows_read", "rows_loaded")
WRITTEN_KEYS = ("records_written", "rows_written", "dagster/row_count")
INVALID_KEYS = ("quarantined_rows", "records_quarantined", "rows_quarantined")
PHASES = {"bronze": "bronze", "silver": "silver", "gold": "gold", "exports": "export", "jobs": "ingest",
          "ops": "other"}
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def _value(metadata: dict, keys: tuple[str, ...]) -> int | None:
    for key in keys:
        if key in metadata:
            value = getattr(metadata[key], "value", metadata[key])
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return int(value)
    return None


def _error_text(error) -> str:
    """The user's own exception first (the deepest cause), then Dagster's wrapper, in at most 2,000 characters."""
    messages = []
    while error is not None:
        messages.append((getattr(error, "message", None) or str(error)).strip().splitlines()[0])
        error = getattr(error, "cause", None)
    return " <- ".join(reversed(messages))[:2000] if messages else "step failed"


def _mode(run) -> str:
    tags = run.tags or {}
    if "dagster/schedule_name" in tags:
        return "scheduled"
    if "dagster/sensor_name" in tags:
        return "sensor"
    if "dagster/backfill" in tags:
        return "backfill"
    return "manual"


def _time(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, timezone.utc) if timestamp else None


#: The events a run's rows are made of (a run stores ~2x as many: plans, outputs, logs, engine events; reading
#: only these halves what each sync deserializes).
LOGGED_EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE,
                 dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION,
                 dg.DagsterEventType.RUN_FAILURE}


def rows_for_run(instance: dg.DagsterInstance, run, started: float | None = None, ended: float | None = None
                 ) -> list[dict[str, Any]]:
    steps: dict[str, dict[str, Any]] = {}
    run_error = None
    for entry in instance.all_logs(run.run_id, of_type=LOGGED_EVENTS):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        step = steps.setdefault(entry.step_key or "(run)", {"outputs": [], "checks": []})
        if kind == "STEP_START":
            step["start"] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            step["end"] = entry.timestamp
            step["success"] = kind == "STEP_SUCCESS"
            if kind == "STEP_FAILURE":
                step["error"] = _error_text(getattr(event.event_specific_data, "error", None))
        elif kind == "ASSET_MATERIALIZATION":
            step["outputs"].append(entry.asset_materialization)
        elif kind == "ASSET_CHECK_EVALUATION":
            step["checks"].append(event.event_specific_data)
        elif kind == "RUN_FAILURE":
            run_error = (event.message or "run failed").strip()[:2000]
    common = {"run_id": run.run_id, "dagster_run_id": run.run_id, "pipeline_id": run.job_name,
              "execution_mode": _mode(run), "partition_key": (run.tags or {}).get("dagster/partition")}
    rows = []
    for step_key, step in steps.items():
        if step_key == "(run)" and not step["outputs"] and not step["checks"]:
            continue
        start, end = step.get("start"), step.get("end")
        times = {"start_time": _time(start), "end_time": _time(end),
                 "duration_secs": round(end - start, 3) if start and end else None}
        for output in step["outputs"]:
            metadata = output.metadata or {}
            invalid = _value(metadata, INVALID_KEYS)
            written = _value(metadata, WRITTEN_KEYS)
            processed = _value(metadata, PROCESSED_KEYS)
            if processed is None and written is not None:
                processed = written + (invalid or 0)
            key = output.asset_key.to_user_string()
            rows.append({**common, **times, "log_id": f"{run.run_id}:{step_key}:{key}",
                         "phase": PHASES.get(output.asset_key.path[0], "other"), "step_name": key, "asset_key": key,
                         "partition_key": output.partition or common["partition_key"],
                         "rows_processed": processed, "rows_written": written, "invalid_rows": invalid,
                         "valid_rows": None if invalid is None or processed is None else processed - invalid,
                         "success": step.get("success", True), "error_message": step.get("error")})
        for check in step["checks"]:
            key = check.asset_key.to_user_string()
            severity = getattr(getattr(check, "severity", None), "value", None)
            rows.append({**common, **times, "log_id": f"{run.run_id}:{step_key}:{key}:{check.check_name}",
                         "phase": "check", "step_name": f"{key}:{check.check_name}", "asset_key": key,
                         "success": bool(check.passed),
                         "error_message": None if check.passed else f"check {check.check_name} failed ({severity})",
                         "metadata": json.dumps({k: getattr(v, "value", str(v)) for k, v in
                                                 (check.metadata or {}).items()}, default=str)})
        if not step["outputs"] and not step["checks"] and step.get("success") is False:
            # one name per step in the report: an asset's step key (bronze__users) as its asset key (bronze/users)
            name = step_key.replace("__", "/")
            rows.append({**common, **times, "log_id": f"{run.run_id}:{step_key}",
                         "phase": PHASES.get(name.split("/")[0], "other"), "step_name": name, "success": False,
                         "error_message": step.get("error")})
    if run.status == dg.DagsterRunStatus.FAILURE and not any(r["success"] is False for r in rows):
        rows.append({**common, "log_id": f"{run.run_id}:(run)", "phase": "other", "step_name": "(run)",
                     "success": False, "error_message": run_error or "run failed",
                     "start_time": _time(started), "end_time": _time(ended),
                     "duration_secs": round(ended - started, 3) if started and ended else None})
    return rows


def sync_runs(instance: dg.DagsterInstance, writer, limit: int | None = None) -> int:
    """Log every finished run not logged yet; returns the rows added (0 when all are there)."""
    return _sync_unlogged(instance, writer, limit)[0]


def _sync_unlogged(instance: dg.DagsterInstance, writer, limit: int | None = None) -> tuple[int, set[str]]:
    """``sync_runs``, also returning the asset keys of the rows it added."""
    logged = writer.table.dagster_run_ids()
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=list(FINISHED)), limit=limit)
    rows = []
    for record in records:
        run = record.dagster_run
        if run.run_id in logged:
            continue
        rows += rows_for_run(instance, run, record.start_time, record.end_time)
    if not rows:
        return 0, set()
    added = writer.table.insert_new(writer._to_table(rows, None))  # one MERGE: all these runs' rows, or none
    return added, {row.get("asset_key") or "" for row in rows}


# Runs whose last update lies this close before the cursor are asked for again: a run whose status commit lands
# after a later run's was read would otherwise be skipped. The cursor also holds the ids of the runs it has read in
# that window, so they are not read twice.
CURSOR_OVERLAP_SECONDS = 1.0


def sync_runs_after(instance: dg.DagsterInstance, writer, cursor: dict | None,
                    batch: int = 200) -> tuple[int, set[str], dict]:
    """Log the runs that finished since ``cursor`` (``{"updated_after": <a run record's update time>, "recent":
    [ids read near it]}``; None: every finished run the log lacks), at most ``batch`` of them, oldest first.
    Returns the rows added, the asset keys of the rows of runs not read before, and the next cursor."""
    if not cursor or cursor.get("updated_after") is None:
        newest = instance.get_run_records(filters=dg.RunsFilter(statuses=list(FINISHED)), limit=1,
                                          order_by="update_timestamp", ascending=False)
        added, keys = _sync_unlogged(instance, writer)
        if not newest:
            return added, keys, {}
        updated_after = newest[0].update_timestamp.timestamp()
        since = datetime.fromtimestamp(updated_after - CURSOR_OVERLAP_SECONDS, tz=timezone.utc)
        window = instance.get_run_records(filters=dg.RunsFilter(statuses=list(FINISHED), updated_after=since))
        return added, keys, {"updated_after": updated_after, "recent": sorted(r.dagster_run.run_id for r in window)}
    updated_after, recent = cursor["updated_after"], set(cursor.get("recent") or ())
    since = datetime.fromtimestamp(updated_after - CURSOR_OVERLAP_SECONDS, tz=timezone.utc)
    records = [r for r in instance.get_run_records(filters=dg.RunsFilter(statuses=list(FINISHED), updated_after=since),
                                                   limit=batch, order_by="update_timestamp", ascending=True)
               if r.dagster_run.run_id not in recent]
    rows, keys = [], set()
    for record in records:
        run_rows = rows_for_run(instance, record.dagster_run, record.start_time, record.end_time)
        rows += run_rows
        keys.update(row.get("asset_key") or "" for row in run_rows)
    newest = max([updated_after, *(record.update_timestamp.timestamp() for record in records)])
    # the ids read within the overlap window before the new cursor: those still in it, and those just read
    window = {*recent, *(record.dagster_run.run_id for record in records)} if newest - updated_after < \
        CURSOR_OVERLAP_SECONDS else {record.dagster_run.run_id for record in records
                                     if record.update_timestamp.timestamp() > newest - CURSOR_OVERLAP_SECONDS}
    next_cursor = {"updated_after": newest, "recent": sorted(window)}
    if not rows:
        return 0, set(), next_cursor
    added = writer.table.insert_new(writer._to_table(rows, None))  # keyed: a run read again adds nothing
    return added, keys, next_cursor
