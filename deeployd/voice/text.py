"""Cutting text into sentences, for whole texts and for text that arrives token by token.

A sentence ends at `.`, `!`, `?`, `…` (or their CJK forms) FOLLOWED by whitespace (which it
keeps), or at a line break. Waiting for the whitespace keeps "3.14" together; an abbreviation
like "e.g. " does end a "sentence", which only costs a short pause. A sentence
longer than `max_len` is cut at the last space (or comma) before the limit, so one endless
sentence cannot hold back the first audio.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MAX_SENTENCE = 300
_END = re.compile("[.!?\u2026\u3002\uff01\uff1f]+[\"')\\]\u201d\u2019]*\\s+|\n+")
# Control characters (the engines would try to pronounce or choke on them) and lone surrogates
# (JSON can carry them; they cannot be encoded to the UTF-8 both engines take).
_UNSPEAKABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def clean(text: str) -> str:
    """Replace unspeakable characters with spaces (one for one: metering counts the text)."""
    return _UNSPEAKABLE.sub(" ", text)


def _cut_long(sentence: str, max_len: int) -> Iterator[str]:
    while len(sentence) > max_len:
        window = sentence[:max_len]
        cut = max(window.rfind(", "), window.rfind("; ")) + 2  # keep the comma and its space
        if cut < max_len // 3:
            cut = window.rfind(" ") + 1
        if cut <= 0:
            cut = max_len
        yield sentence[:cut]
        sentence = sentence[cut:]
    if sentence:
        yield sentence


class SentenceBuffer:
    """Accumulates text and hands out complete sentences as soon as they end. Bounded: at most
    `max_len` characters of an unfinished sentence are ever held."""

    def __init__(self, max_len: int = MAX_SENTENCE) -> None:
        self.max_len = max_len
        self._pending = ""

    def feed(self, text: str) -> list[str]:
        self._pending += clean(text)
        out: list[str] = []
        while True:
            match = _END.search(self._pending)
            if match is None:
                break
            sentence, self._pending = (
                self._pending[: match.end()],
                self._pending[match.end() :],
            )
            out.extend(s for s in _cut_long(sentence, self.max_len) if s.strip())
        if len(self._pending) > self.max_len:
            pieces = list(_cut_long(self._pending, self.max_len))
            self._pending = pieces.pop()
            out.extend(p for p in pieces if p.strip())
        return out

    def flush(self) -> list[str]:
        rest, self._pending = self._pending, ""
        return [rest] if rest.strip() else []


def split_sentences(text: str, max_len: int = MAX_SENTENCE) -> list[str]:
    """Every sentence of a whole text, in order; joined they give back the cleaned text."""
    buffer = SentenceBuffer(max_len)
    return buffer.feed(text) + buffer.flush()


_LINK = re.compile(r"!?\[([^\]]*)\]\([^)\s]*\)")
_EMPHASIS = re.compile(r"(?:\*{1,3}|_{2,3})(?=\S)|(?<=\S)(?:\*{1,3}|_{2,3})")
_CODE = re.compile(r"`+")
_LINE_MARK = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+]\s+(?=\S))", re.MULTILINE)


def speakable_markdown(text: str) -> str:
    """An agent's answer is usually Markdown; eSpeak would say "asterisk asterisk" for **bold**.
    Keep the words, drop the markup: emphasis, code ticks, heading/quote/bullet marks, link URLs."""
    text = _LINK.sub(r"\1", text)
    text = _LINE_MARK.sub(" ", text)
    text = _EMPHASIS.sub("", text)
    return _CODE.sub("", text)
