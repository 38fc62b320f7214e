"""A part file's body: a page's JSON lines gzipped as its batches are encoded, never held whole as text.

The bytes are those of the page's whole text gzipped at once at level 1 with mtime 0: deflate's output
does not depend on how its input is cut (no flush until the end), and the gzip header is zlib's either way
(only its OS byte differs from `gzip.compress`'s since Python 3.13). Holding the compressed page instead
of its text (~6× larger, then joined and encoded into two more copies of that size) is what keeps the
extraction's memory flat.
"""

from __future__ import annotations

import hashlib
import zlib

# Level 1: raw is read once by Spark; the CPU is better spent keeping up with the cursor.
LEVEL = 1
_GZIP = 31  # zlib's wbits for a gzip header and trailer


class PartBody:
    """The gzip of a page's lines, fed one block of lines at a time."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(LEVEL, zlib.DEFLATED, _GZIP)
        self._chunks: list[bytes] = []

    def write(self, lines: bytes) -> None:
        """More of the page's text, UTF-8 encoded."""
        self._chunks.append(self._deflate.compress(lines))

    def finish(self) -> tuple[bytes, str]:
        """The gzip file's bytes and their sha256 (hex)."""
        self._chunks.append(self._deflate.flush())
        body = b"".join(self._chunks)
        self._chunks = []
        return body, hashlib.sha256(body).hexdigest()
