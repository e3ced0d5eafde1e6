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


# What each column means (shown in the Dagster UI through dagster/column_schema). A table-specific entry
# (``"<schema>.<table>.<column>"``) wins over the column's general meaning.
COLUMN_DESCRIPTIONS = {
    # bronze lineage
    "_source_file": "Landing file the row came from.",
    "_row_number": "1-based row (or line) number within its landing file.",
    "_ingested_at": "When the row was loaded into bronze (UTC).",
    "line": "The raw JSON line as it arrived (kept even when it does not parse).",
    "_parse_error": "Why the record could not be parsed as CSV/JSON (null for a good record).",
    "_extra_fields": "Fields beyond the header's, of a record with too many (JSON list; null otherwise).",
    # users
    "user_id": "The user's id (integer > 0).",
    "email": "Email address, lower-cased.",
    "name": "The user's name, trimmed.",
    "country": "Country code, upper-cased.",
    "subscription_tier": "free, basic or premium; any other value becomes unknown.",
    "signup_date": "The day the user signed up (YYYY-MM-DD).",
    "birth_year": "Year of birth, when given as an integer.",
    "updated_at": "When the source last changed the record; the newest version wins.",
    # content
    "content_id": "The content's id (integer).",
    "title": "Title of the content.",
    "content_type": "Kind of content (the source's type, lower-cased).",
    "genres": "Genres joined with ',' in their order; null when none.",
    "primary_genre": "The first genre, or null.",
    "release_year": "Year of release.",
    "release_country": "Country of release.",
    "duration_minutes": "Running time in minutes (integer, else null).",
    "cast_count": "Number of cast members (0 when missing).",
    "lead_actor": "Name of the first cast member whose role is lead.",
    "imdb_rating": "IMDb rating.",
    "age_rating": "Age rating.",
    # sessions
    "session_id": "The viewing session's id (integer).",
    "started_at": "When the session started (UTC).",
    "ended_at": "When the session ended (UTC).",
    "device": "tv, mobile, web or tablet; any other value becomes other.",
    "completion_pct": "Share of the content watched, 0 to 100; null when not reported.",
    "watch_seconds": "Whole seconds from started_at to ended_at.",
    # quarantine
    "entity": "users, content or viewing_sessions: which input the row came from.",
    "reason": "The first rule the row broke (see the contract's list, in order).",
    "source_file": "Landing file of the quarantined row.",
    "row_number": "Row (or line) number within that file.",
    "raw": "The original record, as JSON text.",
    # gold
    "sessions_count": "Sessions of the user (0 when none).",
    "total_watch_seconds": "Sum of watch_seconds of the sessions (0 when none).",
    "avg_completion_pct": "Average completion_pct of the sessions that report it.",
    "distinct_content_count": "Different content items the user watched.",
    "first_session_at": "Start of the user's first session.",
    "last_session_at": "Start of the user's last session.",
    "favorite_device": "Device with most sessions (ties: alphabetical); null without sessions.",
    "views": "Sessions of the content.",
    "unique_viewers": "Different users who watched the content.",
    "completion_rate": "Sessions with completion_pct >= 90 / sessions reporting completion_pct (0 to 1).",
    "view_date": "UTC date the sessions started.",
    "sessions": "Sessions of that day, device and country.",
    "unique_users": "Different users of that day, device and country.",
    "gold.daily_viewing.country": "Country of the sessions' users.",
    "gold.viewing_fact.country": "Country of the session's user.",
    "gold.viewing_fact.subscription_tier": "Subscription tier of the session's user.",
    "gold.viewing_fact.title": "Title of the watched content.",
}


def column_description(table: str, column: str) -> str | None:
    """What ``column`` of ``<schema>.<table>`` means, from the contract (None for an unknown column)."""
    return COLUMN_DESCRIPTIONS.get(f"{table}.{column}") or COLUMN_DESCRIPTIONS.get(column)
