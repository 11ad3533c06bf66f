"""SSE fan-out benchmark: the event log -> EventBus -> EventStreamer -> uvicorn path, end to end.

    .venv/bin/python bench/sse_fanout.py            # default run, about 1 minute
    .venv/bin/python bench/sse_fanout.py --quick    # smaller sizes, for a smoke run

Two scenarios, every part a separate process as in production (2 cores are shared by all of them):

(a) one stream, one SSE reader: a producer process publishes as fast as it can through its own
    `EventPublisher` (own DB pool, several concurrent `publish_many` loops) into embedded Postgres;
    the API (`python -m uvicorn api.main:app`) fans the events out to one reader of
    `GET /api/events/stream?streams=...`. Every event carries its publish wall-clock time
    (`time.time_ns()`), so the reader measures publish->receive latency, and a sequence number,
    so the reader proves zero loss (each number once, in order).
(b) 1,000 readers of one stream on ONE API process, fed at `--rate` events/s, measured against a
    bare sse-starlette endpoint (a tiny Starlette app, same uvicorn, per-subscriber asyncio queues
    filled by an in-process producer at the same rate): the ceiling of the HTTP/SSE stack, with
    no database, no auth and no event bus. Both servers run throughout and `--rounds` rounds
    alternate between them, so both see the same background load.

Readers are raw asyncio protocols in a separate client process (an HTTP/1.1 request, then
incremental de-chunking and a regex over complete SSE lines), so the API process is measured
alone; its CPU time comes from /proc. Results: a table on stdout and JSON in bench/results/.

Internal roles (`--role producer|clients|bare`) are how the orchestrator starts its children.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
BUCKET_NS = 100_000  # latency histogram resolution: 0.1 ms

# One SSE event as both servers frame it: `id: N`, then the data as Postgres renders the jsonb
# `{"seq": S, "t": T, "type": "tick"}` (shorter keys first).
FRAME = re.compile(rb'id: (\d+)\ndata: \{"t": (\d+), "seq": (\d+)')


def raise_fd_limit() -> None:
    """1,000 sockets per side need more than the usual 1,024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def use_uvloop() -> None:
    # uvicorn[standard] already depends on uvloop; the readers use it too when present.
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def percentile(hist: dict[int, int], q: float) -> float:
    """The q-quantile (0..1) of a bucketed latency histogram, in ms."""
    total = sum(hist.values())
    if not total:
        return float("nan")
    rank = q * total
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return (bucket + 1) * BUCKET_NS / 1e6
    return max(hist) * BUCKET_NS / 1e6


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---------------------------------------------------------------------------------------------
# Role: SSE readers (a separate process)
# ---------------------------------------------------------------------------------------------


@dataclass
class ReaderStats:
    """Shared by every reader of one client process."""

    expect: int
    hist: dict[int, int] = field(default_factory=dict)
    received: int = 0
    first_ns: int = 0
    last_ns: int = 0
    anomalies: int = 0  # a sequence number missing, repeated or out of order
    cut_off: int = 0  # readers that got the slow_consumer error
    failed: int = 0  # readers refused or disconnected before the end
    complete: int = 0
    examples: list[str] = field(default_factory=list)


class SseReader(asyncio.Protocol):
    """One SSE client: a raw HTTP/1.1 GET, chunked-body decoding and frame scanning."""

    def __init__(self, request: bytes, stats: ReaderStats, ready: asyncio.Future[None]) -> None:
        self.request = request
        self.stats = stats
        self.ready = ready
        self.done: asyncio.Future[None] = ready.get_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.in_body = False
        self.raw = bytearray()
        self.chunk_left = 0  # bytes of the current HTTP chunk (payload + CRLF) still to come
        self.tail = b""  # an incomplete SSE line carried to the next read
        self.next_seq = 0
        self.last_id = 0
        self.count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.stats.failed += 1
            self._note(f"connection lost after {self.count} events: {exc}")
            self._finish()

    def _note(self, text: str) -> None:
        if len(self.stats.examples) < 10:
            self.stats.examples.append(text)

    def _finish(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)
        if not self.done.done():
            self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status_line = self.head.split(b"\r\n", 1)[0]
            if b" 200 " not in status_line or b"chunked" not in self.head[:end].lower():
                self.stats.failed += 1
                self._note(f"bad response: {self.head[:300]!r}")
                self._finish()
                return
            self.in_body = True
            data = self.head[end + 4 :]
            self.head = b""
            if not self.ready.done():
                self.ready.set_result(None)  # subscribed: the server has sent the headers
        self.raw += data
        body = self._dechunk()
        if body:
            self._scan(body)

    def _dechunk(self) -> bytes:
        raw, pos, out = self.raw, 0, []
        while True:
            if self.chunk_left == 0:
                newline = raw.find(b"\r\n", pos)
                if newline < 0:
                    break
                size = int(raw[pos:newline].split(b";", 1)[0], 16)
                pos = newline + 2
                if size == 0:
                    self._finish()  # the server ended the response
                    break
                self.chunk_left = size + 2
            take = min(self.chunk_left, len(raw) - pos)
            if take <= 0:
                break
            out.append(bytes(raw[pos : pos + take]))
            pos += take
            self.chunk_left -= take
        del raw[:pos]
        return b"".join(out)

    def _scan(self, body: bytes) -> None:
        data = self.tail + body
        cut = data.rfind(b"\n")
        if cut < 0:
            self.tail = data
            return
        self.tail = data[cut + 1 :]
        complete = data[: cut + 1]
        now = time.time_ns()
        stats = self.stats
        hist = stats.hist
        matches = FRAME.findall(complete)
        for event_id, sent, seq in matches:
            seq_n = int(seq)
            id_n = int(event_id)
            if seq_n != self.next_seq or id_n <= self.last_id:
                stats.anomalies += 1
                self._note(f"expected seq {self.next_seq}, got {seq_n} (id {id_n})")
            self.next_seq = seq_n + 1
            self.last_id = id_n
            bucket = (now - int(sent)) // BUCKET_NS
            hist[bucket] = hist.get(bucket, 0) + 1
        if matches:
            self.count += len(matches)
            stats.received += len(matches)
            if not stats.first_ns:
                stats.first_ns = now
            stats.last_ns = now
            if self.count >= stats.expect:
                stats.complete += 1
                self._finish()
                return
        if b'"slow_consumer"' in complete:
            stats.cut_off += 1
            self._note(f"cut off as a slow consumer after {self.count} events")
            self._finish()


async def run_readers(args: argparse.Namespace) -> None:
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    stats = ReaderStats(expect=args.expect)
    headers = "".join(f"{h}\r\n" for h in args.header)
    request = (
        f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n{headers}"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()
    readers: list[SseReader] = []
    gate = asyncio.Semaphore(100)  # connect in waves so the accept queue never overflows

    async def connect() -> None:
        async with gate:
            ready: asyncio.Future[None] = loop.create_future()
            reader = SseReader(request, stats, ready)
            readers.append(reader)
            try:
                await loop.create_connection(lambda: reader, args.host, args.port)
                await asyncio.wait_for(ready, timeout=60)
            except (OSError, TimeoutError) as exc:
                stats.failed += 1
                reader._note(f"connect failed: {exc!r}")
                reader._finish()

    await asyncio.gather(*(connect() for _ in range(args.subscribers)))
    print("READY", sum(1 for r in readers if not r.done.done()), flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(r.done for r in readers)), timeout=args.timeout)
    for reader in readers:
        reader._finish()
    result = {
        "subscribers": args.subscribers,
        "expect": args.expect,
        "received": stats.received,
        "complete": stats.complete,
        "anomalies": stats.anomalies,
        "cut_off": stats.cut_off,
        "failed": stats.failed,
        "first_ns": stats.first_ns,
        "last_ns": stats.last_ns,
        "hist": stats.hist,
        "examples": stats.examples,
    }
    print("RESULT", json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------
# Role: producer through the event log (a separate process)
# ---------------------------------------------------------------------------------------------


async def run_producer(args: argparse.Namespace) -> None:
    from deeployd.db import Database
    from deeployd.eventlog import EventPublisher
    from deeployd.settings import Settings

    settings = Settings(database_url=args.db_url)
    db = Database(args.db_url, pool_size=4)
    await db.open()
    publisher = EventPublisher(
        db.pool, coalesce_ms=settings.event_coalesce_ms, max_batch=settings.event_max_batch
    )
    org, stream = args.org, args.stream
    seq = 0
    start_ns = time.time_ns()
    try:
        if args.mode == "max":
            # As fast as it can: `--loops` concurrent publish_many loops of `--batch` events.
            # Sequence numbers are drawn in call order, which is also id (commit) order.
            async def loop_body() -> None:
                nonlocal seq
                while seq < args.events:
                    batch = []
                    for _ in range(min(args.batch, args.events - seq)):
                        batch.append((org, stream, "tick", {"seq": seq, "t": time.time_ns()}))
                        seq += 1
                    await publisher.publish_many(batch)

            await asyncio.gather(*(loop_body() for _ in range(args.loops)))
        else:
            # Paced: every tick, publish what is due by now (publish_nowait: never blocks pacing).
            total = int(args.rate * args.duration)
            futures = []
            begin = time.monotonic()
            while seq < total:
                due = min(total, int((time.monotonic() - begin) * args.rate) + 1)
                while seq < due:
                    futures.append(
                        publisher.publish_nowait(
                            org, stream, "tick", {"seq": seq, "t": time.time_ns()}
                        )
                    )
                    seq += 1
                await asyncio.sleep(args.tick_ms / 1000)
            await asyncio.gather(*futures)
        end_ns = time.time_ns()
    finally:
        await publisher.close()
        await db.close()
    print("RESULT", json.dumps({"published": seq, "start_ns": start_ns, "end_ns": end_ns}))


# ---------------------------------------------------------------------------------------------
# Role: the bare sse-starlette endpoint (the stack's ceiling)
# ---------------------------------------------------------------------------------------------


def run_bare(args: argparse.Namespace) -> None:
    import uvicorn
    from sse_starlette import EventSourceResponse, ServerSentEvent
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    queues: set[asyncio.Queue[bytes]] = set()
    state = {"overflows": 0, "published": 0}

    async def frames(queue: asyncio.Queue[bytes]) -> Any:
        try:
            yield ServerSentEvent(comment="connected", retry=3000)
            while True:
                # The same batching as EventStreamer: everything waiting, up to 256 frames.
                chunk = [await queue.get()]
                while len(chunk) < 256 and not queue.empty():
                    chunk.append(queue.get_nowait())
                yield b"".join(chunk)
        finally:
            queues.discard(queue)

    async def stream(request: Request) -> EventSourceResponse:
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=2000)  # EventBus's mailbox size
        queues.add(queue)
        return EventSourceResponse(frames(queue), ping=15)

    async def produce(rate: float, duration: float, tick_ms: float) -> None:
        total = int(rate * duration)
        begin = time.monotonic()
        seq = 0
        while seq < total:
            due = min(total, int((time.monotonic() - begin) * rate) + 1)
            while seq < due:
                # Byte for byte what the API sends (jsonb's rendering of the same data).
                payload = f'{{"t": {time.time_ns()}, "seq": {seq}, "type": "tick"}}'
                frame = f"id: {seq + 1}\ndata: {payload}\n\n".encode()
                for queue in queues:
                    try:
                        queue.put_nowait(frame)
                    except asyncio.QueueFull:
                        state["overflows"] += 1
                seq += 1
                state["published"] = seq
            await asyncio.sleep(tick_ms / 1000)

    tasks: set[asyncio.Task[None]] = set()

    async def start(request: Request) -> JSONResponse:
        q = request.query_params
        task = asyncio.create_task(
            produce(float(q["rate"]), float(q["duration"]), float(q["tick_ms"]))
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return JSONResponse({"subscribers": len(queues)}, status_code=202)

    async def status(request: Request) -> JSONResponse:
        return JSONResponse({"subscribers": len(queues), **state})

    app = Starlette(
        routes=[
            Route("/stream", stream),
            Route("/start", start, methods=["POST"]),
            Route("/status", status),
        ]
    )
    raise_fd_limit()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", backlog=4096)


# ---------------------------------------------------------------------------------------------
# The orchestrator
# ---------------------------------------------------------------------------------------------


def _me(role: str, *extra: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--role", role, *extra]


async def _child(args: list[str], env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 26,  # a RESULT line carries a whole latency histogram
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


async def _line(process: asyncio.subprocess.Process, prefix: str, timeout: float) -> str:
    """The payload of the first stdout line starting with `prefix`."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {prefix} line from child in {timeout:.0f}s")
        raw = await asyncio.wait_for(process.stdout.readline(), timeout=left)
        if not raw:
            raise RuntimeError(f"child exited (code {await process.wait()}) before {prefix}")
        text = raw.decode().rstrip("\n")
        if text.startswith(prefix):
            return text[len(prefix) :].strip()


async def _start_readers(
    host: str,
    port: int,
    path: str,
    headers: list[str],
    subscribers: int,
    expect: int,
    timeout: float,
) -> tuple[asyncio.subprocess.Process, int]:
    args = ["--host", host, "--port", str(port), "--path", path]
    args += ["--subscribers", str(subscribers), "--expect", str(expect)]
    args += ["--timeout", str(timeout)]
    for header in headers:
        args += ["--header", header]
    process = await _child(_me("clients", *args))
    ready = int(await _line(process, "READY", timeout=120))
    return process, ready


async def _finish_readers(process: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(await _line(process, "RESULT", timeout=timeout))
    await process.wait()
    result["hist"] = {int(k): v for k, v in result["hist"].items()}
    return result


# One measured round: the readers' results, the first publish time (ns), the server's CPU seconds.
Round = tuple[dict[str, Any], int, float]


def _summarise(name: str, rounds: list[Round]) -> dict[str, Any]:
    """Figures over one or more rounds of (reader results, first publish time, server CPU s)."""
    hist: dict[int, int] = {}
    received = expected = anomalies = complete = cut_off = failed = 0
    span = cpu = 0.0
    examples: list[str] = []
    for readers, start_ns, cpu_s in rounds:
        for bucket, count in readers["hist"].items():
            hist[bucket] = hist.get(bucket, 0) + count
        received += readers["received"]
        expected += readers["subscribers"] * readers["expect"]
        anomalies += readers["anomalies"]
        complete += readers["complete"]
        cut_off += readers["cut_off"]
        failed += readers["failed"]
        examples += readers["examples"]
        # Per round: first publish -> last event received by the last reader.
        span += max((readers["last_ns"] - start_ns) / 1e9, 1e-9)
        cpu += cpu_s
    subscribers = rounds[0][0]["subscribers"]
    return {
        "name": name,
        "rounds": len(rounds),
        "subscribers": subscribers,
        "events_per_subscriber": rounds[0][0]["expect"],
        "delivered": received,
        "expected": expected,
        "deliveries_per_s": received / span,
        "p50_ms": percentile(hist, 0.50),
        "p99_ms": percentile(hist, 0.99),
        "max_ms": percentile(hist, 1.0),
        "zero_loss": received == expected
        and anomalies == 0
        and complete == subscribers * len(rounds),
        "anomalies": anomalies,
        "cut_off": cut_off,
        "failed": failed,
        "server_cpu_s": cpu,
        "examples": examples[:10],
    }


async def _produce_through_log(
    db_url: str, org: str, stream: str, extra: list[str]
) -> dict[str, Any]:
    producer = await _child(
        _me("producer", "--db-url", db_url, "--org", org, "--stream", stream, *extra)
    )
    result: dict[str, Any] = json.loads(await _line(producer, "RESULT", timeout=600))
    await producer.wait()
    return result


async def scenario_a(ctx: Stack, opts: argparse.Namespace) -> dict[str, Any]:
    stream = f"run:bench-a-{uuid.uuid4().hex[:8]}"
    readers, _ = await _start_readers(
        "127.0.0.1",
        ctx.api_port,
        f"/api/events/stream?streams={stream}",
        [f"Authorization: Bearer {ctx.api_key}"],
        1,
        opts.events,
        timeout=300,
    )
    cpu0 = cpu_seconds(ctx.api.pid)
    produced = await _produce_through_log(
        ctx.db_url,
        ctx.org_id,
        stream,
        [
            *("--mode", "max", "--events", str(opts.events)),
            *("--loops", str(opts.loops), "--batch", str(opts.batch)),
        ],
    )
    result = await _finish_readers(readers, timeout=120)
    cpu = cpu_seconds(ctx.api.pid) - cpu0
    summary = _summarise("(a) event log -> API -> 1 reader", [(result, produced["start_ns"], cpu)])
    summary["publish_per_s"] = produced["published"] / (
        (produced["end_ns"] - produced["start_ns"]) / 1e9
    )
    return summary


async def round_b_deeployd(ctx: Stack, opts: argparse.Namespace, rate: float) -> Round:
    """One round of (b) on the API: readers connect, a producer process publishes at the rate."""
    stream = f"pipeline:bench-b-{uuid.uuid4().hex[:8]}"
    readers, _ = await _start_readers(
        "127.0.0.1",
        ctx.api_port,
        f"/api/events/stream?streams={stream}",
        [f"Authorization: Bearer {ctx.api_key}"],
        opts.subscribers,
        int(rate * opts.duration),
        timeout=opts.duration + 60,
    )
    await asyncio.sleep(1)  # let the connection burst settle before measuring CPU
    cpu0 = cpu_seconds(ctx.api.pid)
    produced = await _produce_through_log(
        ctx.db_url,
        ctx.org_id,
        stream,
        [
            *("--mode", "rate", "--rate", str(rate)),
            *("--duration", str(opts.duration), "--tick-ms", str(opts.tick_ms)),
        ],
    )
    result = await _finish_readers(readers, timeout=opts.duration + 90)
    return result, produced["start_ns"], cpu_seconds(ctx.api.pid) - cpu0


async def round_b_bare(ctx: Stack, opts: argparse.Namespace, rate: float) -> Round:
    """The same round on the bare endpoint, its producer in-process, started over HTTP."""
    import httpx

    readers, _ = await _start_readers(
        "127.0.0.1",
        ctx.bare_port,
        "/stream",
        [],
        opts.subscribers,
        int(rate * opts.duration),
        timeout=opts.duration + 60,
    )
    await asyncio.sleep(1)
    cpu0 = cpu_seconds(ctx.bare.pid)
    start_ns = time.time_ns()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ctx.bare_port}") as http:
        response = await http.post(
            "/start",
            params={"rate": rate, "duration": opts.duration, "tick_ms": opts.tick_ms},
        )
        response.raise_for_status()
        result = await _finish_readers(readers, timeout=opts.duration + 90)
        cpu = cpu_seconds(ctx.bare.pid) - cpu0
        status = (await http.get("/status")).json()
    if status["overflows"]:
        result["examples"].append(f"bare queues overflowed {status['overflows']} times")
    return result, start_ns, cpu


@dataclass
class Stack:
    db_url: str
    org_id: str
    api_key: str
    api_port: int
    api: subprocess.Popen[bytes]
    bare_port: int
    bare: subprocess.Popen[bytes]


async def _make_org(db_url: str) -> tuple[str, str]:
    from deeployd.db import Database
    from deeployd.models.organization import Scope
    from deeployd.orgs import create_api_key, get_or_create_org

    db = Database(db_url, pool_size=1)
    try:
        async with db.session() as session:
            org = await get_or_create_org(session, f"bench-{uuid.uuid4().hex[:8]}")
            _, key = await create_api_key(session, org.id, "bench", [Scope.admin])
    finally:
        await db.close()
    return org.id, key


COLUMNS = (
    ("scenario", 38, "<"),
    ("readers", 7, ">"),
    ("delivered", 9, ">"),
    ("deliveries/s", 12, ">"),
    ("p50 ms", 7, ">"),
    ("p99 ms", 7, ">"),
    ("max ms", 7, ">"),
    ("server CPU s", 12, ">"),
    ("CPU us/delivery", 15, ">"),
    ("zero loss", 9, ">"),
)


def _table_line(cells: list[str]) -> str:
    return (
        "| " + " | ".join(f"{c:{a}{w}}" for c, (_, w, a) in zip(cells, COLUMNS, strict=True)) + " |"
    )


def _row(r: dict[str, Any]) -> str:
    cpu = r["server_cpu_s"]
    return _table_line(
        [
            r["name"],
            f"{r['subscribers']:,}",
            f"{r['delivered']:,}",
            f"{r['deliveries_per_s']:,.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['max_ms']:.1f}",
            f"{cpu:.2f}",
            f"{1e6 * cpu / max(r['delivered'], 1):.1f}",
            "yes" if r["zero_loss"] else "NO",
        ]
    )


def report(results: dict[str, Any], opts: argparse.Namespace) -> None:
    print()
    print(
        f"SSE fan-out on {os.cpu_count()} cores — (a) {opts.events:,} events, producer at full "
        f"speed ({opts.loops} publish_many loops x {opts.batch}); (b) {opts.subscribers:,} readers"
        f" x {' and '.join(f'{r:g}' for r in opts.rates)} ev/s x {opts.duration:g} s,"
        f" {opts.rounds} rounds per server and rate, alternating."
        " Load average before: "
        f"{results['load_before']}, after: {results['load_after']}"
    )
    print(_table_line([name for name, _, _ in COLUMNS]))
    print("|" + "|".join("-" * (w + 2) for _, w, _ in COLUMNS) + "|")
    keys = ["a", *(f"b_{kind}@{rate:g}" for rate in opts.rates for kind in ("deeployd", "bare"))]
    for key in keys:
        if key in results:
            print(_row(results[key]))
    a = results.get("a")
    if a:
        met = a["deliveries_per_s"] >= 5000 and a["p99_ms"] < 50 and a["zero_loss"]
        print(
            f"(a) producer published {a['publish_per_s']:,.0f} ev/s; the reader got "
            f"{a['deliveries_per_s']:,.0f} ev/s, p99 {a['p99_ms']:.1f} ms; target >= 5,000 ev/s "
            f"with p99 < 50 ms and zero loss: {'MET' if met else 'MISSED'}"
        )
    for rate in opts.rates:
        b, bare = results.get(f"b_deeployd@{rate:g}"), results.get(f"b_bare@{rate:g}")
        if not (b and bare):
            continue
        ratio = b["deliveries_per_s"] / bare["deliveries_per_s"]
        cost = b["server_cpu_s"] / max(b["delivered"], 1)
        bare_cost = bare["server_cpu_s"] / max(bare["delivered"], 1)
        print(
            f"(b) @ {rate:g} ev/s: deeployd delivered {100 * ratio:.0f}% of the bare endpoint's "
            f"deliveries/s (target >= 70%: {'MET' if ratio >= 0.7 else 'MISSED'}); p99 "
            f"{b['p99_ms']:.0f} vs {bare['p99_ms']:.0f} ms; server CPU per delivery "
            f"{1e6 * cost:.1f} vs {1e6 * bare_cost:.1f} us"
        )
        results[f"b_ratio@{rate:g}"] = ratio
    for key in keys:
        r = results.get(key)
        if r and r["examples"]:
            print(f"   {r['name']}: {r['examples'][:3]}")


async def orchestrate(opts: argparse.Namespace) -> dict[str, Any]:
    from deeployd import migrations
    from deeployd.devstack import EmbeddedPostgres, free_port, stop_process, wait_for_port
    from deeployd.security import SecretBox

    raise_fd_limit()
    results: dict[str, Any] = {"load_before": load_average(), "options": vars(opts)}
    with tempfile.TemporaryDirectory(prefix="sse-bench-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pg")
        api = bare = None
        try:
            db_url = postgres.url
            await asyncio.to_thread(migrations.upgrade, db_url)
            org_id, api_key = await _make_org(db_url)
            api_port = free_port()
            env = {
                "DATABASE_URL": db_url,
                # Nothing listens there: streaming needs no Temporal, and the API tolerates it.
                "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
                "DEEPLOYD_SECRET_KEY": SecretBox.generate_key(),
                "DEEPLOYD_LOG_JSON": "false",
                "DEEPLOYD_LOG_LEVEL": "WARNING",
                "DEEPLOYD_DATA_DIR": tmp,
            }
            log = open(Path(tmp) / "api.log", "wb")  # noqa: ASYNC230 - once, at setup
            api = subprocess.Popen(  # noqa: ASYNC220 - stopped with devstack.stop_process
                [
                    *(sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1"),
                    *("--port", str(api_port), "--log-level", "warning", "--backlog", "4096"),
                ],
                env={**os.environ, **env},
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            # The bare server idles (no CPU) while the API is measured, and vice versa.
            bare_port = free_port()
            bare = subprocess.Popen(_me("bare", "--port", str(bare_port)), cwd=REPO)  # noqa: ASYNC220
            await asyncio.to_thread(wait_for_port, "127.0.0.1", api_port, timeout=60, process=api)
            await asyncio.to_thread(wait_for_port, "127.0.0.1", bare_port, timeout=60, process=bare)
            stack = Stack(db_url, org_id, api_key, api_port, api, bare_port, bare)
            print(f"API pid {api.pid} on port {api_port} (attach py-spy here)", flush=True)
            if opts.only in (None, "a"):
                print("running (a): one stream, producer at full speed ...", flush=True)
                results["a"] = await scenario_a(stack, opts)
            if opts.only in (None, "b"):
                # Rounds alternate between the two servers so both see the same background load.
                for rate in opts.rates:
                    ours: list[Round] = []
                    theirs: list[Round] = []
                    for n in range(opts.rounds):
                        step = f"(b) {rate:g} ev/s, round {n + 1}/{opts.rounds}"
                        print(f"running {step}: API ...", flush=True)
                        ours.append(await round_b_deeployd(stack, opts, rate))
                        print(f"running {step}: bare ...", flush=True)
                        theirs.append(await round_b_bare(stack, opts, rate))
                    results[f"b_deeployd@{rate:g}"] = _summarise(
                        f"(b) deeployd API @ {rate:g} ev/s", ours
                    )
                    results[f"b_bare@{rate:g}"] = _summarise(
                        f"(b) bare sse-starlette @ {rate:g} ev/s", theirs
                    )
        finally:
            for process in (api, bare):
                if process is not None:
                    stop_process(process, timeout=10)
            postgres.stop()
    results["load_after"] = load_average()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=["main", "producer", "clients", "bare"], default="main")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--only", choices=["a", "b"], help="run one scenario")
    parser.add_argument("--events", type=int, help="(a) events to publish (default 100000)")
    parser.add_argument("--loops", type=int, default=2, help="(a) concurrent publish_many loops")
    parser.add_argument("--batch", type=int, default=100, help="(a) events per publish_many")
    parser.add_argument("--subscribers", type=int, help="(b) concurrent readers (default 1000)")
    parser.add_argument(
        "--rate", type=float, help="(b) one rate only (events/s) instead of --rates"
    )
    parser.add_argument(
        "--rates",
        help="(b) comma-separated events/s into the stream (default 100,300: one load both servers"
        " keep up with, one near saturation); keep rate x duration under the 2,000-event mailbox",
    )
    parser.add_argument(
        "--duration", type=float, help="(b) seconds of publishing per round (default 5)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="(b) rounds per server, alternating")
    parser.add_argument("--tick-ms", type=float, default=5.0, help="(b) producer pacing tick")
    # internal, for the child roles
    parser.add_argument("--db-url")
    parser.add_argument("--org")
    parser.add_argument("--stream")
    parser.add_argument("--mode", choices=["max", "rate"], default="max")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--path")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--expect", type=int)
    parser.add_argument("--timeout", type=float, default=120)
    opts = parser.parse_args()

    if opts.role == "bare":
        run_bare(opts)
        return
    if opts.role == "producer":
        use_uvloop()
        asyncio.run(run_producer(opts))
        return
    if opts.role == "clients":
        use_uvloop()
        asyncio.run(run_readers(opts))
        return

    quick = opts.quick
    opts.events = opts.events or (20_000 if quick else 100_000)
    opts.subscribers = opts.subscribers or (200 if quick else 1000)
    if opts.rate and not opts.rates:
        opts.rates = f"{opts.rate:g}"
    opts.rates = [float(r) for r in (opts.rates or ("100" if quick else "100,300")).split(",")]
    opts.duration = opts.duration or (3.0 if quick else 5.0)
    sys.path.insert(0, str(REPO))
    results = asyncio.run(orchestrate(opts))
    report(results, opts)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"sse_fanout-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"JSON: {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
