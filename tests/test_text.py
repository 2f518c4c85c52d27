"""Names shown on a terminal: escape codes, undecodable bytes and bidirectional overrides are
escaped (issue 20, item 13); ordinary text, Unicode included, is unchanged."""

from __future__ import annotations

import os

from unmix.text import printable


def test_control_characters_are_escaped():
    assert printable("a\x1b[2Jb\nc\x07\x7f") == "a\\x1b[2Jb\\x0ac\\x07\\x7f"
    assert printable("x\u202egnp.exe") == "x\\u202egnp.exe"  # right-to-left override


def test_undecodable_bytes_show_as_their_value():
    name = os.fsdecode(b"song-\xff\xfe.wav")  # how Python hands over a non-UTF-8 file name
    shown = printable(name)
    assert shown == "song-\\xff\\xfe.wav"
    shown.encode("utf-8")  # printable on any UTF-8 terminal (the raw name is not)


def test_ordinary_text_is_unchanged():
    for text in ["Björk – Jóga (live).flac", "日本語.wav", "tab\tseparated", "a b"]:
        assert printable(text) == text
