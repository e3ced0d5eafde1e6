"""Telling a landing file that can be read record by record from one that cannot be read at all.

A file whose bytes are not UTF-8 text (random bytes, an image, UTF-16), or a compressed file that is
truncated or corrupt, cannot be read as its entity: :class:`UnreadableFile` says why, in words a
person can act on, quoting at most a short escaped excerpt of the bad bytes. The landing resource's
``bad_files`` policy then decides: block the run, or reject the file and go on.

A file with a few bad records (a stray NUL byte, a field that is not UTF-8, a ragged row) is not
unreadable: its bad records are kept and quarantined one by one.
"""

from __future__ import annotations

import gzip
import zlib

from etl_platform.landing.files import LandingFile, ZstdStreamError, open_binary

SAMPLE_BYTES = 64 * 1024
EXCERPT_BYTES = 16
UTF8_BOM = b"\xef\xbb\xbf"
# Longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
FOREIGN_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32LE"), (b"\x00\x00\xfe\xff", "UTF-32BE"),
                (b"\xff\xfe", "UTF-16LE"), (b"\xfe\xff", "UTF-16BE"))
# More bad characters than this share of a sample (and at least MIN_BAD of them) make a file unreadable;
# fewer are bad records, quarantined one by one.
MAX_BAD_SHARE = 0.01
MIN_BAD = 8
TEXT_CONTROLS = {9, 10, 13}


class UnreadableFile(Exception):
    """A landing file that cannot be read as its entity. The message completes "<file> ..."."""


def excerpt(data: bytes, start: int = 0) -> str:
    """A short, escaped excerpt of ``data`` from ``start``: safe to put in a log or a check result."""
    return repr(data[start:start + EXCERPT_BYTES]) + ("…" if len(data) > start + EXCERPT_BYTES else "")


def decompression_errors() -> tuple[type[BaseException], ...]:
    """What the gzip and zstd readers raise on a truncated or corrupt stream."""
    return EOFError, gzip.BadGzipFile, zlib.error, ZstdStreamError


def corrupt_compression(file: LandingFile, error: BaseException) -> UnreadableFile:
    return UnreadableFile(
        f"is a truncated or corrupt {file.compression} file ({type(error).__name__}: {str(error)[:200]}); "
        "none of its records were loaded: send the file again"
    )


def check_text(file: LandingFile) -> None:
    """Raise :class:`UnreadableFile` when the start of ``file`` shows it is not UTF-8 text."""
    try:
        with open_binary(file) as handle:
            sample = handle.read(SAMPLE_BYTES)
    except decompression_errors() as error:
        raise corrupt_compression(file, error) from None
    for mark, encoding in FOREIGN_BOMS:
        if sample.startswith(mark):
            raise UnreadableFile(
                f"is encoded as {encoding} (it starts with the byte-order mark {excerpt(mark)}); the platform "
                f"reads UTF-8: convert it first, e.g. `iconv -f {encoding} -t UTF-8`"
            )
    sample = sample.removeprefix(UTF8_BOM)
    if len(sample) == SAMPLE_BYTES:
        sample = sample[:-4]  # the cut may split a multi-byte character
    if not sample:
        return
    limit = max(MIN_BAD, MAX_BAD_SHARE * len(sample))
    controls = [i for i, byte in enumerate(sample) if (byte < 32 and byte not in TEXT_CONTROLS) or byte == 127]
    if len(controls) > limit:
        raise UnreadableFile(
            f"is not text: {len(controls):,} control bytes (such as NUL) in its first {len(sample):,} bytes, "
            f"the first at byte {controls[0]}: {excerpt(sample, controls[0])}; it starts {excerpt(sample)}"
        )
    text = sample.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd") - sample.decode("utf-8", errors="ignore").count("\ufffd")
    if invalid > limit:
        first = _first_invalid_utf8(sample)
        raise UnreadableFile(
            f"is not UTF-8: {invalid:,} byte sequences in its first {len(sample):,} bytes are not UTF-8, the first "
            f"at byte {first}: {excerpt(sample, first)}; convert it to UTF-8 (e.g. `iconv -f LATIN1 -t UTF-8`)"
        )


def _first_invalid_utf8(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start
    return 0
