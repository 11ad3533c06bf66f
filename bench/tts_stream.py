"""Streaming TTS benchmark: time to first audio byte and real-time factor, streamed vs batch.

    .venv/bin/python bench/tts_stream.py            # default run, well under 2 minutes
    .venv/bin/python bench/tts_stream.py --quick    # fewer rounds

The stack is started here: embedded PostgreSQL (migrated), a Temporal dev server (the API's
lifespan wants one) and the real API (`python -m uvicorn api.main:app`) in its own process, on
free ports; everything is stopped at the end. A 10-sentence English text is sent to
`POST /api/voice/tts/stream` by 1 and by 10 concurrent clients, with each embedded engine in the
same run: Piper (neural, the default) and eSpeak NG (formant, the fastest), mp3 and opus.

Side by side, in the same run and on the same machine, a baseline server (this file with
`--role batch`, its own uvicorn process) answers the same text the "synthesise all, then
encode, then send" way with the same engine and encoder code, but without auth, database or
metering — so the baseline is, if anything, favoured.

Per stream: time to first byte (request sent -> first body byte), total time, the audio's
duration (decoded with PyAV), and the real-time factor RTF = total time / audio duration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TEXT = " ".join(
    [
        "Welcome to the Deeployd voice streaming benchmark.",
        "This text has exactly ten sentences, each of a realistic length for a spoken answer.",
        "The server cuts the text at sentence ends and synthesises one sentence at a time.",
        "Every encoded sentence is sent as soon as it is ready, ending on a frame boundary.",
        "A player can therefore start speaking long before the last sentence exists.",
        "The baseline instead synthesises everything, encodes everything, and only then sends.",
        "Both use the same embedded speech engine and the same FFmpeg encoders.",
        "We measure the time to the first audio byte and the real-time factor.",
        "A real-time factor below one means audio is produced faster than it plays.",
        "That is the end of the benchmark text, thank you for listening.",
    ]
)


# --- the baseline server ----------------------------------------------------------------------


def batch_app():  # type: ignore[no-untyped-def]
    import threading

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from deeployd.voice.encoders import FORMATS, StreamEncoder
    from deeployd.voice.providers import embedded_synthesizer
    from deeployd.voice.text import split_sentences

    async def tts(request: Request) -> Response:
        body = await request.json()
        fmt = FORMATS[body.get("format", "mp3")]
        synthesizer = embedded_synthesizer(
            body.get("engine", "piper"), body.get("voice", "alloy"), "en-us", 1.0
        )
        cancel = threading.Event()
        pcm = b"".join(
            [await synthesizer.synthesize(s, cancel) for s in split_sentences(body["text"])]
        )

        def encode() -> bytes:
            encoder = StreamEncoder(fmt, synthesizer.sample_rate)
            return encoder.encode(pcm) + encoder.finish()

        audio = await asyncio.to_thread(encode)
        return Response(audio, media_type=fmt.content_type(synthesizer.sample_rate))

    return Starlette(routes=[Route("/tts", tts, methods=["POST"])])


# --- the client -------------------------------------------------------------------------------


async def one_stream(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    started = time.perf_counter()
    first: float | None = None
    parts: list[bytes] = []
    async with http.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            if first is None:
                first = time.perf_counter() - started
            parts.append(chunk)
    total = time.perf_counter() - started
    return {"ttfb": first or total, "total": total, "data": b"".join(parts)}


def measure_audio(results: list[dict[str, Any]], fmt: str) -> None:
    """Decode AFTER the round: decoding inside the client loop would delay the other streams."""
    from deeployd.voice.probe import decode

    for r in results:
        r["audio"] = decode(r.pop("data"), fmt).seconds
        r["rtf"] = r["total"] / r["audio"]


def summarise(results: list[dict[str, Any]], walls: list[float], fmt: str) -> dict[str, Any]:
    measure_audio(results, fmt)
    ttfb = sorted(r["ttfb"] * 1000 for r in results)
    rtf = sorted(r["rtf"] for r in results)
    audio = sum(r["audio"] for r in results)
    return {
        "streams": len(results),
        "ttfb_ms_p50": statistics.median(ttfb),
        "ttfb_ms_max": ttfb[-1],
        "rtf_p50": statistics.median(rtf),
        "rtf_max": rtf[-1],
        "audio_s_per_stream": results[0]["audio"],
        "audio_s_per_wall_s": audio / sum(walls),
    }


async def scenario(
    targets: dict[str, tuple[str, dict[str, str]]],
    body: dict[str, Any],
    concurrency: int,
    rounds: int,
) -> dict[str, dict[str, Any]]:
    """Rounds alternate between the modes, so both see the same background load."""
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in targets}
    walls: dict[str, list[float]] = {mode: [] for mode in targets}
    limits = httpx.Limits(max_connections=concurrency + 2)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        for url, headers in targets.values():
            await one_stream(http, url, body, headers)  # warm-up: engine load, connections
        for _ in range(rounds):
            for mode, (url, headers) in targets.items():
                t0 = time.perf_counter()
                results[mode] += await asyncio.gather(
                    *(one_stream(http, url, body, headers) for _ in range(concurrency))
                )
                walls[mode].append(time.perf_counter() - t0)
    return {mode: summarise(results[mode], walls[mode], body["format"]) for mode in targets}


async def bootstrap_key(database_url: str) -> str:
    from deeployd.db import Database
    from deeployd.models.organization import Scope
    from deeployd.orgs import create_api_key, get_or_create_org

    db = Database(database_url, pool_size=1)
    try:
        async with db.session() as session:
            org = await get_or_create_org(session, f"bench-{uuid.uuid4().hex[:8]}")
            _, key = await create_api_key(session, org.id, "bench", [Scope.admin])
    finally:
        await db.close()
    return key


def spawn(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    from deeployd.devstack import wait_for_port

    process = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", port, timeout=60, process=process)
    return process


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--role", choices=["orchestrate", "batch"], default="orchestrate")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.role == "batch":
        import uvicorn

        uvicorn.run(batch_app(), host="127.0.0.1", port=args.port, log_level="warning")
        return

    from deeployd import migrations
    from deeployd.devstack import (
        EmbeddedPostgres,
        free_port,
        start_temporal_dev_server,
        stop_process,
    )
    from deeployd.security import SecretBox
    from deeployd.voice.text import split_sentences

    assert len(split_sentences(TEXT)) == 10
    # (rounds at 1 stream, rounds at 10): Piper's inference is ~15x eSpeak's CPU per audio second.
    rounds = {
        "piper": (3, 1) if args.quick else (5, 2),
        "espeak": (3, 1) if args.quick else (10, 5),
    }
    tmp = Path(tempfile.mkdtemp(prefix="tts-bench-"))
    postgres = EmbeddedPostgres(tmp / "pg")
    processes: list[subprocess.Popen[Any]] = []
    try:
        migrations.upgrade(postgres.url)
        temporal_port = free_port()
        processes.append(start_temporal_dev_server(port=temporal_port, ui_port=None, db_file=None))
        api_port, batch_port = free_port(), free_port()
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
            "DEEPLOYD_SECRET_KEY": SecretBox.generate_key(),
            "DEEPLOYD_LOG_LEVEL": "WARNING",
            "DEEPLOYD_LOG_JSON": "false",
            # 10 concurrent streams from one organisation: lift the default bound of 4.
            "DEEPLOYD_VOICE_MAX_CONCURRENT_PER_ORG": "16",
        }
        processes.append(
            spawn(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "api.main:app",
                    "--port",
                    str(api_port),
                    "--log-level",
                    "warning",
                ],
                env,
                api_port,
            )
        )
        processes.append(
            spawn(
                [sys.executable, __file__, "--role", "batch", "--port", str(batch_port)],
                env,
                batch_port,
            )
        )
        key = asyncio.run(bootstrap_key(postgres.url))
        rows = []
        targets = {
            "streamed": (
                f"http://127.0.0.1:{api_port}/api/voice/tts/stream",
                {"Authorization": f"Bearer {key}"},
            ),
            "batch": (f"http://127.0.0.1:{batch_port}/tts", {}),
        }
        load_before = os.getloadavg()[0]
        for engine, (rounds_1, rounds_10) in rounds.items():
            for fmt in ("mp3", "opus"):
                body = {"text": TEXT, "voice": "alloy", "format": fmt, "engine": engine}
                for concurrency, n in ((1, rounds_1), (10, rounds_10)):
                    by_mode = asyncio.run(scenario(targets, body, concurrency, n))
                    for mode, result in by_mode.items():
                        rows.append(
                            {
                                "engine": engine,
                                "format": fmt,
                                "concurrency": concurrency,
                                "mode": mode,
                                **result,
                            }
                        )
                        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        load_after = os.getloadavg()[0]
    finally:
        for process in reversed(processes):
            stop_process(process, timeout=10)
        postgres.stop()

    print(
        f"\n{os.cpu_count()} CPUs; 1-minute load average {load_before:.2f} before, "
        f"{load_after:.2f} after (other processes share the machine)"
    )
    audio = {r["engine"]: r["audio_s_per_stream"] for r in rows if r["format"] == "mp3"}
    print(
        f"Text: 10 sentences, {len(TEXT)} characters, {len(TEXT.split())} words; audio per "
        + ", ".join(f"{engine} {seconds:.1f} s" for engine, seconds in audio.items())
        + " (mp3)\n"
    )
    print(
        "| engine | format | streams | mode | TTFB p50 (ms) | TTFB max (ms) | RTF p50 | RTF max "
        "| audio s / wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['engine']} | {r['format']} | {r['concurrency']} | {r['mode']} | "
            f"{r['ttfb_ms_p50']:.1f} | "
            f"{r['ttfb_ms_max']:.1f} | {r['rtf_p50']:.4f} | {r['rtf_max']:.4f} | "
            f"{r['audio_s_per_wall_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
