"""The ``etl-platform`` command."""

from __future__ import annotations

import time
from pathlib import Path

import click

from etl_platform import settings
from etl_platform.video_analytics import contract, demo_data


@click.group()
def main() -> None:
    """etl_platform: tools around the Dagster code location `etl_platform.definitions`."""


@main.command("demo-data")
@click.option("--sessions", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Number of viewing sessions (users = sessions/20, content = sessions/1000).")
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed, same files.")
@click.option("--defects/--no-defects", default=False, show_default=True,
              help="Add rows that break each rule of the contract (about 1 % of each entity).")
@click.option("--landing", "landing_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Landing root (default: $ETL_PLATFORM_LANDING, else $ETL_PLATFORM_HOME/landing).")
def demo_data_command(sessions: int, seed: int, defects: bool, landing_root: Path | None) -> None:
    """Write the video-analytics input files into the landing zone (replacing earlier demo files)."""
    folder = (landing_root or settings.landing_root()) / contract.DOMAIN
    started = time.monotonic()
    summary = demo_data.generate(folder, sessions=sessions, seed=seed, defects=defects)
    click.echo(
        f"Wrote {summary.users:,} users, {summary.content:,} content items and {summary.sessions:,} sessions "
        f"to {folder.resolve()} in {time.monotonic() - started:.1f} s: {', '.join(summary.files)}"
    )
    if defects:
        click.echo("Defect rows added: " + ", ".join(f"{k} {v:,}" for k, v in summary.defect_rows.items()))


@main.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The job file (YAML, seed 003's form).")
@click.option("--full-refresh", is_flag=True, help="Ignore the saved incremental state: read everything again.")
@click.option("--mode", type=click.Choice(["self_hosted", "cloud"]), default="self_hosted", show_default=True,
              help="cloud: the worker's disk goes with the run, so a local-disk target is refused and "
                   "ETL_PLATFORM_HOME (state, quarantine) must be set to a lasting volume (docs/jobs.md).")
def run_command(config_path: Path, full_refresh: bool, mode: str) -> None:
    """Run one YAML job without Dagster: progress as it reads (stderr), one summary line per object (stdout)."""
    from etl_platform.errors import EtlPlatformError
    from etl_platform.jobs import load_job, run_job

    try:
        spec = load_job(config_path)
        results = run_job(spec, full_refresh=full_refresh, log=lambda line: click.echo(line, err=True), mode=mode)
    except EtlPlatformError as error:
        click.echo(f"FAILED: {error}", err=True)
        raise SystemExit(1) from None
    for result in results:
        click.echo(result.summary())


@main.command("validate")
@click.argument("job_files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def validate_command(job_files: tuple[Path, ...]) -> None:
    """Check job files without running them: every problem with its YAML path (exit 1 if any)."""
    from etl_platform.jobs import validate_job

    failed = False
    for path in job_files:
        problems = validate_job(path)
        if problems:
            failed = True
            click.echo(f"{path}: {len(problems)} problem(s)")
            for problem in problems:
                click.echo(f"  {problem}")
        else:
            click.echo(f"{path}: valid")
    if failed:
        raise SystemExit(1)


@main.command("summary")
@click.option("--warehouse", "path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The DuckDB file (default: $ETL_PLATFORM_WAREHOUSE, else $ETL_PLATFORM_HOME/warehouse.duckdb).")
def summary_command(path: Path | None) -> None:
    """What the last run left: each layer's tables and rows, its checks, the quarantine by reason, where the
    warehouse is and how to open the UI (read-only)."""
    from etl_platform.video_analytics.summary import render

    click.echo(render(path or settings.warehouse_path()))


@main.command("schema")
@click.argument("kind", type=click.Choice(["job"]))
def schema_command(kind: str) -> None:
    """Print the JSON Schema of a YAML job file (for editors: yaml-language-server, VS Code, IntelliJ)."""
    import json

    from etl_platform.jobs.schema import job_json_schema

    click.echo(json.dumps(job_json_schema(), indent=2))


@main.command("report")
@click.option("--days", type=click.IntRange(min=1), default=30, show_default=True, help="The window, in days.")
@click.option("--chart", "chart_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the chart (PNG) here.")
def report_command(days: int, chart_path: Path | None) -> None:
    """The platform-health summary from the execution log (runs of $DAGSTER_HOME's instance logged first)."""
    import os

    from etl_platform.execution_log.models import WriterConfig
    from etl_platform.execution_log.report import chart, markdown
    from etl_platform.execution_log.writer import LogWriter

    writer = LogWriter(config=WriterConfig(sync_dagster_runs=False))  # synced just below, saying how many
    if os.environ.get("DAGSTER_HOME"):
        import dagster as dg

        from etl_platform.execution_log.dagster_runs import sync_runs

        with dg.DagsterInstance.get() as instance:
            added = sync_runs(instance, writer)
        click.echo(f"(logged {added} new row(s) from the Dagster instance at $DAGSTER_HOME)", err=True)
    click.echo(markdown(writer, days))
    if chart_path is not None:
        written = chart(writer, days, chart_path)
        click.echo(f"chart: {written}" if written else "chart: nothing logged in the window", err=True)


@main.command("compact-warehouse")
@click.option("--path", "path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The DuckDB file (default: $ETL_PLATFORM_WAREHOUSE, else $ETL_PLATFORM_HOME/warehouse.duckdb).")
def compact_warehouse_command(path: Path | None) -> None:
    """Rewrite the DuckDB warehouse without the free blocks replaced tables left (only when at least 30 % of it is
    free). Run it while nothing else uses the warehouse: no run in progress, schedules and sensors paused."""
    from etl_platform.warehouse.duckdb_warehouse import DuckDBWarehouse, WarehouseLockedError

    warehouse = DuckDBWarehouse(path=str(path) if path else None, lock_timeout_seconds=5)
    try:
        result = warehouse.reclaim_space(compact=True)
    except WarehouseLockedError as error:
        click.echo(f"FAILED: {error}", err=True)
        raise SystemExit(1) from None
    click.echo(f"{warehouse.database_path}: {result['done']}")


if __name__ == "__main__":
    main()
