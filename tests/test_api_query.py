"""Comma-separated filters in query strings (`streams`, `types`, `agentIds`, `eventTypes`)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from api.query import csv_set

# What a caller may list: anything without a comma, not only blanks.
items = st.text(min_size=1, max_size=20).filter(lambda s: "," not in s and s.strip())
padding = st.sampled_from(["", " ", "  ", "\t"])


@given(st.lists(st.tuples(padding, items, padding), max_size=8), st.integers(0, 3))
def test_listed_items_come_back_trimmed_whatever_the_spacing(
    listed: list[tuple[str, str, str]], empty_slots: int
) -> None:
    parts = [f"{before}{item}{after}" for before, item, after in listed] + [" "] * empty_slots
    expected = {item.strip() for _, item, _ in listed}
    assert csv_set(",".join(parts)) == (frozenset(expected) or None)


def test_nothing_listed_is_no_filter() -> None:
    assert csv_set(None) is None
    assert csv_set("") is None
    assert csv_set(" , ,") is None
    assert csv_set("run:started, alert:triggered") == {"run:started", "alert:triggered"}
