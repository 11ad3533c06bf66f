import assert from "node:assert/strict";
import { test } from "node:test";

import { SseParser, type SseMessage } from "../src/index.js";
import { client, conversation, scriptedAgent } from "./support.js";

const WIRE =
  ": connected\r\nretry: 3000\r\n\r\n" +
  'id: 7\ndata: {"type": "token", "token": "Hel"}\n\n' +
  'id: 8\r\ndata: {"type": "token",\r\ndata:  "token": "lo"}\r\n\r\n' +
  ": ping - 2026-11-24 10:00:15\n\n" +
  'data: {"type":"error","code":"slow_consumer"}\n\n' +
  "event: ignored\rid: 9\rdata\r\r";

function parseAll(chunks: string[]): SseMessage[] {
  const parser = new SseParser();
  return chunks.flatMap((chunk) => parser.push(chunk));
}

test("the SSE parser gives the same messages however the bytes are split", () => {
  const whole = parseAll([WIRE]);
  assert.deepEqual(
    whole.map((m) => [m.id, m.data]),
    [
      ["7", '{"type": "token", "token": "Hel"}'],
      ["8", '{"type": "token",\n "token": "lo"}'],
      [null, '{"type":"error","code":"slow_consumer"}'],
      ["9", ""],
    ],
  );
  // Every split point, and a random split into many pieces, parse to the same messages.
  for (let at = 0; at <= WIRE.length; at += 1) {
    assert.deepEqual(parseAll([WIRE.slice(0, at), WIRE.slice(at)]), whole, `split at ${at}`);
  }
  let seed = 42;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let round = 0; round < 200; round += 1) {
    const chunks: string[] = [];
    for (let at = 0; at < WIRE.length; ) {
      const size = 1 + Math.floor(random() * 12);
      chunks.push(WIRE.slice(at, at + size));
      at += size;
    }
    assert.deepEqual(parseAll(chunks), whole);
  }
});

test("a stream resumed at its end is answered 204 and ends without reconnecting", async () => {
  const sdk = client();
  const agentId = await scriptedAgent(sdk, [{ text: "Short answer." }]);
  const first = await sdk.conversations.sendMessageStream({
    conversationId: await conversation(sdk, agentId),
    content: "hi",
  });
  for await (const event of first) void event;
  assert.ok(first.lastEventId !== null);
  const ended = sdk.runs.stream(first.runId, { lastEventId: first.lastEventId, signal: AbortSignal.timeout(10_000) });
  const after: unknown[] = [];
  for await (const event of ended) after.push(event);
  assert.deepEqual(after, []);
  assert.equal(ended.reconnects, 0);
});
