/**
 * Server-Sent Events over `fetch`: a WHATWG-conformant parser and a reconnecting, resumable
 * reader. Streams authenticate with the `Authorization` header (never a key in the URL), resume
 * with `Last-Event-ID`, back off exponentially (capped) between attempts and never deliver an
 * event twice: every event of the log has an increasing numeric id, and anything at or below
 * the last id delivered is dropped.
 */

import { ApiError, type Transport } from "./http.js";

/** One dispatched SSE message: its `id:` (null when the frame had none) and parsed `data:`. */
export interface SseMessage {
  id: string | null;
  data: string;
  retry: number | null;
}

/** Incremental SSE parser (https://html.spec.whatwg.org/multipage/server-sent-events.html). */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private eventId: string | null = null;
  private retry: number | null = null;
  private afterCR = false;

  /** Feed decoded text; returns every message completed by it. */
  push(text: string): SseMessage[] {
    // A "\r" that ended the previous chunk already ended its line: skip the "\n" of a "\r\n".
    if (this.afterCR && text.startsWith("\n")) text = text.slice(1);
    this.afterCR = false;
    this.buffer += text;
    const out: SseMessage[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (match === null) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      if (match[0] === "\r" && this.buffer === "") this.afterCR = true;
      const message = this.line(line);
      if (message !== null) out.push(message);
    }
    return out;
  }

  private line(line: string): SseMessage | null {
    if (line === "") {
      const message =
        this.data.length > 0 ? { id: this.eventId, data: this.data.join("\n"), retry: this.retry } : null;
      this.data = [];
      this.eventId = null;
      this.retry = null;
      return message;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") this.data.push(value);
    else if (name === "id" && !value.includes("\0")) this.eventId = value;
    else if (name === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
    return null;
  }
}

/** Reads SSE messages from a response body until it ends (or `signal` aborts). */
export async function* readSse(
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<SseMessage> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  const onAbort = (): void => {
    reader.cancel().catch(() => undefined);
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const message of parser.push(decoder.decode(value, { stream: true }))) yield message;
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

/** Any event of a stream: a JSON object with a `type`, plus its log id (null for control frames). */
export interface StreamEnvelope {
  id: number | null;
  data: { type: string; [key: string]: unknown };
}

export interface EventStreamOptions {
  /** Query parameters (never the key: it goes in the Authorization header). */
  params?: Record<string, string>;
  /** Resume after this event id (0 replays a stream from its beginning). */
  lastEventId?: number | null;
  /** End the stream after delivering an event this returns true for (e.g. `done`). */
  stopWhen?: (event: StreamEnvelope) => boolean;
  /** Abort to close the stream; the iterator then ends without an error. */
  signal?: AbortSignal;
  /** Backoff before the n-th reconnect: min(initialBackoffMs * 2^(n-1), maxBackoffMs). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Give up (throw) after this many consecutive failed reconnects; unlimited by default. */
  maxAttempts?: number;
  /** Called each time a connection is established (the server said `: connected`). */
  onOpen?: () => void;
}

/** HTTP statuses after which reconnecting cannot help. */
const FATAL = new Set([400, 401, 403, 404, 405, 409, 410, 422]);

/**
 * A reconnecting SSE reader: `for await (const event of stream)` yields each event's data with
 * its log `id` merged in. Each connection sends
 * `Last-Event-ID` with the last id delivered; a 204 answer means the stream has ended.
 */
export class EventStream<T = StreamEnvelope["data"] & { id: number | null }>
  implements AsyncIterable<T>
{
  /** The id of the last event delivered (what the next connection resumes after). */
  lastEventId: number | null;
  /** How many times the stream reconnected. */
  reconnects = 0;
  private readonly controller = new AbortController();
  private started = false;

  constructor(
    private readonly transport: Transport,
    private readonly path: string,
    private readonly options: EventStreamOptions = {},
  ) {
    this.lastEventId = options.lastEventId ?? null;
    const outer = options.signal;
    if (outer !== undefined) {
      if (outer.aborted) this.controller.abort();
      else outer.addEventListener("abort", () => this.controller.abort(), { once: true });
    }
  }

  /** Close the stream: a pending `next()` resolves as done. */
  close(): void {
    this.controller.abort();
  }

  get closed(): boolean {
    return this.controller.signal.aborted;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.started) throw new Error("an EventStream can be iterated only once");
    this.started = true;
    return this.merged();
  }

  private async *merged(): AsyncGenerator<T> {
    for await (const event of this.withIds()) yield { ...event.data, id: event.id } as unknown as T;
  }

  /** The same events as `{id, data}` envelopes. */
  async *withIds(): AsyncGenerator<StreamEnvelope> {
    this.started = true;
    const signal = this.controller.signal;
    const initial = this.options.initialBackoffMs ?? 500;
    const cap = this.options.maxBackoffMs ?? 30_000;
    let failures = 0;
    try {
      while (!signal.aborted) {
        let response: Response | null = null;
        try {
          response = await this.transport.open("GET", this.path, {
            params: this.options.params,
            headers: this.lastEventId !== null ? { "Last-Event-ID": String(this.lastEventId) } : {},
            signal,
          });
        } catch (error) {
          if (signal.aborted) return;
          if (error instanceof ApiError && FATAL.has(error.status)) throw error;
        }
        if (response !== null) {
          if (response.status === 204) return; // the stream has ended: nothing more will come
          failures = 0;
          this.options.onOpen?.();
          const body = response.body;
          if (body !== null) {
            try {
              for await (const message of readSse(body, signal)) {
                const event = parseEnvelope(message);
                if (event === null) continue;
                if (event.id !== null) {
                  if (this.lastEventId !== null && event.id <= this.lastEventId) continue;
                  this.lastEventId = event.id;
                } else if (event.data.type === "error" && event.data["code"] === "slow_consumer") {
                  break; // reconnect at once and catch up from the log
                }
                yield event;
                if (this.options.stopWhen?.(event)) return;
              }
            } catch (error) {
              if (signal.aborted) return;
              if (!isNetworkError(error)) throw error;
            }
          }
          if (signal.aborted) return;
        }
        failures += 1;
        this.reconnects += 1;
        const max = this.options.maxAttempts;
        if (max !== undefined && failures > max) {
          throw new Error(`gave up on ${this.path} after ${failures - 1} reconnects`);
        }
        await sleep(Math.min(initial * 2 ** (failures - 1), cap), signal);
      }
    } finally {
      this.controller.abort();
    }
  }
}

export function parseEnvelope(message: SseMessage): StreamEnvelope | null {
  let data: unknown;
  try {
    data = JSON.parse(message.data);
  } catch {
    return null;
  }
  if (typeof data !== "object" || data === null || typeof (data as { type?: unknown }).type !== "string") {
    return null;
  }
  const id = message.id !== null && /^\d+$/.test(message.id) ? Number(message.id) : null;
  return { id, data: data as StreamEnvelope["data"] };
}

function isNetworkError(error: unknown): boolean {
  // fetch reports network failures (reset, refused, body cut short) as TypeError; the body
  // reader may also reject with other errors when the connection drops mid-chunk.
  return !(error instanceof ApiError) && !(error instanceof SyntaxError);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
