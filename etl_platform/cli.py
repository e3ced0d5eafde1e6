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


if __name__ == "__main__":
    main()
