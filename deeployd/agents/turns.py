"""How the text of a run's consecutive model turns is joined.

A run that calls tools answers in several model turns ("…(2 + 3) * 7." → tool → "The calculator
says 35."). A model ends a turn without trailing whitespace, so naive concatenation glues the
turns together ("…7.The calculator…"). The run stream therefore prefixes the first token of a
turn that follows earlier text with `TURN_SEPARATOR`; the stored assistant message (what the
model reads back) stays exactly the model's text.
"""

from __future__ import annotations

from collections.abc import Iterable

TURN_SEPARATOR = "\n\n"  # a paragraph break: readable as plain text, Markdown and speech


def turn_separator(previous_text: str | None, next_text: str) -> str:
    """What goes between the text streamed so far (`previous_text`) and the next turn's text:
    a blank line, unless either side is empty or already has whitespace at the seam."""
    if not previous_text or not next_text:
        return ""
    if previous_text[-1].isspace() or next_text[0].isspace():
        return ""
    return TURN_SEPARATOR


def join_turns(texts: Iterable[str]) -> str:
    """The turns' texts as one answer, exactly as the run stream's tokens concatenate."""
    joined = ""
    for text in texts:
        joined += turn_separator(joined, text) + text
    return joined
