"""Text shown on a terminal: file names may hold escape codes or undecodable bytes."""

from __future__ import annotations

import unicodedata

#: bidirectional overrides and isolates: they reorder what a terminal shows
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def printable(text: str) -> str:
    """``text`` with control characters (escape codes, newlines, bidirectional overrides)
    and undecodable bytes (surrogate escapes) written as ``\\x1b``-style escapes.

    Tabs are kept; everything else that is not a control character passes unchanged.
    """
    if text.isprintable():
        return text
    return "".join(_escape(ch) for ch in text)


def _escape(ch: str) -> str:
    if ch == "\t" or (ch.isprintable() and ch not in _BIDI):
        return ch
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if unicodedata.category(ch) in ("Zs",):  # spaces other than " " are printable enough
        return ch
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
