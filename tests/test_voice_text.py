"""Sentence cutting (whole texts and token streams) and Markdown clean-up for speech."""

from __future__ import annotations

from deeployd.voice.text import SentenceBuffer, speakable_markdown, split_sentences


def test_sentences_end_at_punctuation_followed_by_space_or_a_line_break() -> None:
    text = "Pi is 3.14, roughly. Really?! Yes…  Next line\nLast one"
    sentences = split_sentences(text)
    assert sentences == [
        "Pi is 3.14, roughly. ",
        "Really?! ",
        "Yes…  ",
        "Next line\n",
        "Last one",
    ]
    assert "".join(sentences) == text  # nothing lost: metering counts exactly the text


def test_an_endless_sentence_is_cut_at_a_comma_or_space_within_the_limit() -> None:
    text = "word, " * 100
    pieces = split_sentences(text, max_len=50)
    assert all(len(p) <= 50 for p in pieces)
    assert "".join(pieces) == text
    assert all(p.endswith(", ") for p in pieces[:-1])


def test_token_stream_yields_each_sentence_as_soon_as_it_ends() -> None:
    buffer = SentenceBuffer()
    assert buffer.feed("Hello") == []
    assert buffer.feed(" there.") == []  # "." might be "3.14": wait for the next character
    assert buffer.feed(" How") == ["Hello there. "]
    assert buffer.feed(" are you?\n") == ["How are you?\n"]
    assert buffer.feed("Fine") == []
    assert buffer.flush() == ["Fine"]
    assert buffer.flush() == []


def test_markdown_marks_are_not_read_aloud() -> None:
    assert speakable_markdown("**Bold** and *italic*.") == "Bold and italic."
    assert speakable_markdown("See [the docs](https://x.y/z).") == "See the docs."
    assert speakable_markdown("Run `pip install`.") == "Run pip install."
    assert speakable_markdown("## Heading\n- item").split() == ["Heading", "item"]
    assert speakable_markdown("2 * 3 = 6") == "2 * 3 = 6"


def test_control_characters_and_lone_surrogates_become_spaces_one_for_one() -> None:
    text = "Broken \ud83d half. Tab\x00bed \udcff end."
    sentences = split_sentences(text)
    assert sentences == ["Broken   half. ", "Tab bed   end."]
    assert len("".join(sentences)) == len(text)  # metering still counts the text as sent
    for sentence in sentences:
        sentence.encode("utf-8")  # what both engines are handed
