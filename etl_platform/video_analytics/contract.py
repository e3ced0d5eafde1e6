"""The video-analytics contract in one place: entities, their files, columns and keys.

Everything else (assets, checks, the demo-data generator, the tests) reads these names from here.
"""

from __future__ import annotations

from etl_platform.landing import BronzeSpec

DOMAIN = "video_analytics"

USERS_COLUMNS = ("user_id", "email", "name", "country", "subscription_tier", "signup_date", "birth_year", "updated_at")
SESSIONS_COLUMNS = ("session_id", "user_id", "content_id", "started_at", "ended_at", "device", "completion_pct")
CONTENT_KEYS = (
    "content_id", "title", "type", "genres", "release", "duration_minutes", "cast", "ratings", "updated_at",
)

BRONZE = {
    "users": BronzeSpec("users", "bronze.users", "users*.csv", "csv", USERS_COLUMNS),
    "content": BronzeSpec("content", "bronze.content", "content*.jsonl", "jsonl"),
    "viewing_sessions": BronzeSpec(
        "viewing_sessions", "bronze.viewing_sessions", "viewing_sessions*.csv", "csv", SESSIONS_COLUMNS
    ),
}

# Silver: primary key and the columns that may never be null.
PRIMARY_KEYS = {"users": "user_id", "content": "content_id", "viewing_sessions": "session_id"}
REQUIRED_COLUMNS = {
    "users": ("user_id", "signup_date", "subscription_tier"),
    "content": ("content_id", "cast_count"),
    "viewing_sessions": ("session_id", "user_id", "content_id", "started_at", "ended_at", "device", "watch_seconds"),
}
SUBSCRIPTION_TIERS = ("free", "basic", "premium")
DEVICES = ("tv", "mobile", "web", "tablet")

QUARANTINE_REASONS = {
    "users": ("malformed_row", "invalid_user_id", "invalid_signup_date"),
    "content": ("malformed_json", "invalid_content_id"),
    "viewing_sessions": (
        "malformed_row", "invalid_session_id", "invalid_timestamp", "negative_duration", "invalid_completion_pct",
        "completion_out_of_range", "orphan_user", "orphan_content",
    ),
}
