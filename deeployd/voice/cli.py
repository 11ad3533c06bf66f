"""`deeployd say "text" -o out.mp3`: stream speech from the API into a file (or stdout)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import BinaryIO

from deeployd.voice.encoders import FORMATS

_EXTENSIONS = {
    "mp3": "mp3",
    "ogg": "opus",
    "opus": "opus",
    "aac": "aac",
    "flac": "flac",
    "wav": "wav",
    "pcm": "pcm",
    "raw": "pcm",
}


def _api_key(args: argparse.Namespace) -> str:
    if args.api_key:
        return str(args.api_key)
    if os.environ.get("DEEPLOYD_API_KEY"):
        return os.environ["DEEPLOYD_API_KEY"]
    key_file = (
        Path(args.data_dir or os.environ.get("DEEPLOYD_DATA_DIR", ".deeployd")) / "dev-api-key"
    )
    if key_file.exists():
        return key_file.read_text().strip()
    raise SystemExit(f"no API key: set DEEPLOYD_API_KEY or pass --api-key (looked for {key_file})")


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    if args.output and args.output != "-":
        suffix = Path(args.output).suffix.lstrip(".").lower()
        if suffix in _EXTENSIONS:
            return _EXTENSIONS[suffix]
    return "mp3"


async def _say(args: argparse.Namespace, text: str, fmt: str, output: str, sink: BinaryIO) -> int:
    from deeployd.sdk.client import ApiError, Client

    url = args.url or os.environ.get("DEEPLOYD_URL", "http://localhost:8000")
    started = time.perf_counter()
    first_byte: float | None = None
    size = 0
    try:
        async with Client(url, _api_key(args)) as client:
            stream = client.voice.tts_stream(
                text,
                voice=args.voice,
                format=fmt,
                speed=args.speed,
                provider=args.provider,
                engine=args.engine,
                language=args.language,
            )
            async for chunk in stream:
                if first_byte is None:
                    first_byte = time.perf_counter() - started
                sink.write(chunk)
                sink.flush()  # a player reading the file/pipe starts at once
                size += len(chunk)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if output != "-":
        total = time.perf_counter() - started
        print(
            f"wrote {size} bytes of {fmt} to {output} "
            f"(first audio after {1000 * (first_byte or total):.0f} ms, done in {total:.2f} s)",
            file=sys.stderr,
        )
    return 0


def cmd_say(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    fmt = _format(args)
    output = args.output or f"speech.{'ogg' if fmt == 'opus' else fmt}"
    if output == "-":
        return asyncio.run(_say(args, text, fmt, output, sys.stdout.buffer))
    with open(output, "wb") as sink:
        return asyncio.run(_say(args, text, fmt, output, sink))


def add_say_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    say = sub.add_parser("say", help="speak text through the API's streaming TTS into a file")
    say.add_argument("text", help='the text to speak ("-" reads stdin)')
    say.add_argument("-o", "--output", help="file to write ('-' = stdout); default speech.<format>")
    say.add_argument("-v", "--voice", default="alloy")
    say.add_argument(
        "-f", "--format", choices=list(FORMATS), help="default: from -o's extension, else mp3"
    )
    say.add_argument("--speed", type=float, default=None)
    say.add_argument("--provider", choices=["embedded", "openai"], default=None)
    say.add_argument(
        "--engine",
        choices=["piper", "espeak"],
        default=None,
        help="embedded engine (default: piper for English, espeak for other languages)",
    )
    say.add_argument("--language", default=None, help="language, e.g. en-us, de, fr")
    say.add_argument(
        "--url", default=None, help="API base URL (DEEPLOYD_URL, default http://localhost:8000)"
    )
    say.add_argument(
        "--api-key", default=None, help="DEEPLOYD_API_KEY, else <data-dir>/dev-api-key"
    )
    say.add_argument("--data-dir", default=None, help="where `deeployd dev` keeps dev-api-key")
    say.set_defaults(func=cmd_say)
