"""Keeping secrets out of errors, logs and metadata: one place that knows a secret's spellings.

A driver or a server may echo a secret in any of its encodings: libpq quotes a password as it stands in a URL
(``p%w-…``, percent-encoded or not), an API echoes the ``Authorization`` header (the base64 of
``user:password``). :func:`scrub` replaces each of them with ``***``; :func:`forms` lists what is replaced.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus, unquote

MASK = "***"
SHORTEST = 4  # shorter values (a port, "on") would mask ordinary text; they are not secrets worth the name


def forms(secret: str | None) -> set[str]:
    """The spellings of ``secret`` that may appear in a text: as is, percent-encoded (both ways), percent-decoded,
    and base64-encoded."""
    if not secret or len(secret) < SHORTEST:
        return set()
    spellings = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), unquote(secret),
                 base64.b64encode(secret.encode()).decode()}
    return {s for s in spellings if len(s) >= SHORTEST}


def basic_auth(username: str | None, password: str | None) -> str | None:
    """What an ``Authorization: Basic`` header carries for these credentials (the base64 of ``user:password``)."""
    if not password:
        return None
    return base64.b64encode(f"{username or ''}:{password}".encode()).decode()


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` with every spelling of every secret replaced by ``***`` (the longest first, so a secret that holds
    another is masked whole)."""
    spellings: set[str] = set()
    for secret in secrets:
        spellings |= forms(secret)
    for spelling in sorted(spellings, key=len, reverse=True):
        text = text.replace(spelling, MASK)
    return text


def url_password(url: str | None) -> str | None:
    """The password part of ``scheme://user:password@host/...`` as written (still percent-encoded), or None."""
    if not url or "://" not in url:
        return None
    credentials = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]
    return credentials.partition(":")[2] or None
