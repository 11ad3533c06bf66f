import assert from "node:assert/strict";
import { test } from "node:test";

import type { ConversationEvent } from "../src/index.js";
import { client, conversation, cutAfterTokens, scriptedAgent, tokensOf } from "./support.js";

const ASK = "What is (2 + 3) * 7?";
const FIRST = "Let me ask the calculator for (2 + 3) * 7.";

test("a streamed conversation with a tool call approved through the SDK", async () => {
  const sdk = client();
  const agentId = await scriptedAgent(
    sdk,
    [
      { text: FIRST, toolCalls: [{ name: "calculator", arguments: { expression: "(2 + 3) * 7" } }] },
      { text: "The calculator says {{lastToolResult.result}}." },
    ],
    { tools: ["calculator"], approvalRequired: ["calculator"], tokenDelayMs: 2 },
  );
  const conversationId = await conversation(sdk, agentId);

  const stream = await sdk.conversations.sendMessageStream({ conversationId, content: ASK });
  assert.match(stream.runId, /^run_/);
  const events: ConversationEvent[] = [];
  for await (const event of stream) {
    events.push(event);
    if (event.type === "approval_required") {
      assert.equal(event.name, "calculator");
      assert.deepEqual(event.arguments, { expression: "(2 + 3) * 7" });
      assert.equal(event.runId, stream.runId);
      await sdk.runs.approve(event.runId, event.toolCallId);
    }
  }

  const types = events.map((e) => e.type);
  const approval = types.indexOf("approval_required");
  assert.ok(approval > 0, `no approval_required in ${types.join(",")}`);
  assert.ok(types.indexOf("tool_call") < approval);
  assert.ok(types.indexOf("tool_result") > approval);
  assert.equal(types.at(-1), "done");
  const text = events.flatMap((e) => (e.type === "token" ? [e.token] : [])).join("");
  // Consecutive turns read as paragraphs.
  assert.equal(text, `${FIRST}\n\nThe calculator says 35.`);
  const result = events.find((e) => e.type === "tool_result");
  assert.ok(result?.type === "tool_result" && JSON.stringify(result.result).includes("35"));
  const done = events.at(-1);
  assert.ok(done?.type === "done");
  assert.ok(done.usage.total > 0 && done.usage.total === done.usage.prompt + done.usage.completion);
  assert.equal(typeof done.cost, "number");
  const ids = events.map((e) => e.id ?? -1);
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
  assert.equal(new Set(ids).size, ids.length);

  const run = await sdk.runs.get(stream.runId);
  assert.equal(run.status, "completed");
});

test("a rejected tool call and a cancelled run end their streams", async () => {
  const sdk = client();
  const agentId = await scriptedAgent(
    sdk,
    [
      { text: "Checking.", toolCalls: [{ name: "calculator", arguments: { expression: "1 + 1" } }] },
      { text: "Result: {{lastToolResult}}" },
    ],
    { tools: ["calculator"], approvalRequired: ["calculator"] },
  );
  const rejected = await sdk.conversations.sendMessageStream({
    conversationId: await conversation(sdk, agentId),
    content: "add",
  });
  const seen: string[] = [];
  for await (const event of rejected) {
    seen.push(event.type);
    if (event.type === "approval_required") await sdk.runs.reject(event.runId, event.toolCallId, { comment: "no" });
  }
  assert.equal(seen.at(-1), "done");
  assert.equal((await sdk.runs.get(rejected.runId)).status, "completed");

  const cancelled = await sdk.conversations.sendMessageStream({
    conversationId: await conversation(sdk, agentId),
    content: "add",
  });
  let last: ConversationEvent | undefined;
  for await (const event of cancelled) {
    last = event;
    if (event.type === "approval_required") await sdk.runs.cancel(cancelled.runId);
  }
  assert.ok(last?.type === "error", `ended with ${last?.type}`);
  assert.equal((await sdk.runs.get(cancelled.runId)).status, "cancelled");
});

test("a connection cut mid-answer resumes with every token exactly once, in order", async () => {
  const answer = Array.from({ length: 40 }, (_, i) => `word${i}`).join(" ") + ".";
  const flaky = cutAfterTokens(5, (url) => url.includes("stream=true"));
  const sdk = client(flaky);
  const agentId = await scriptedAgent(sdk, [{ text: answer }], { tokenDelayMs: 15 });
  const stream = await sdk.conversations.sendMessageStream({
    conversationId: await conversation(sdk, agentId),
    content: "count",
  });
  const events: ConversationEvent[] = [];
  for await (const event of stream) events.push(event);

  assert.equal(flaky.cuts, 1);
  assert.ok(stream.reconnects >= 1, "the stream never reconnected");
  const tokens = events.flatMap((e) => (e.type === "token" ? [e.token] : []));
  assert.deepEqual(tokens, tokensOf(answer));
  assert.equal(events.at(-1)?.type, "done");
  // The same events, in the same order, as a fresh read of the whole run from the log.
  const reference: (number | null)[] = [];
  for await (const event of client().runs.stream(stream.runId)) reference.push(event.id);
  assert.deepEqual(
    events.map((e) => e.id),
    reference,
  );
});

test("an aborted stream stops at once and bad input is a typed error", async () => {
  const sdk = client();
  const agentId = await scriptedAgent(sdk, [{ text: "one two three four five six seven eight" }], { tokenDelayMs: 200 });
  const controller = new AbortController();
  const stream = await sdk.conversations.sendMessageStream({
    conversationId: await conversation(sdk, agentId),
    content: "go",
    signal: controller.signal,
  });
  const got: string[] = [];
  for await (const event of stream) {
    got.push(event.type);
    if (got.length === 2) controller.abort();
  }
  assert.deepEqual(got, ["token", "token"]);

  await assert.rejects(
    sdk.conversations.sendMessageStream({ conversationId: "conv_missing", content: "x" }),
    (error: unknown) => (error as { status?: number }).status === 404,
  );
});

test("a generic stream cut mid-run reconnects with Last-Event-ID: every event once, in order", async () => {
  const sdk = client();
  const answer = Array.from({ length: 30 }, (_, i) => `w${i}`).join(" ");
  const agentId = await scriptedAgent(sdk, [{ text: answer }], { tokenDelayMs: 30 });
  const started = await sdk.conversations.sendMessage({ conversationId: await conversation(sdk, agentId), content: "go" });
  // Cut the first two connections of the run's stream after a few tokens each.
  const flaky = cutAfterTokens(4, (url) => url.includes(`/api/runs/${started.runId}/stream`), 2);
  const stream = client(flaky).runs.stream(started.runId);
  const events: ConversationEvent[] = [];
  for await (const event of stream) events.push(event);
  assert.equal(flaky.cuts, 2);
  assert.ok(stream.reconnects >= 2);
  assert.deepEqual(
    events.flatMap((e) => (e.type === "token" ? [e.token] : [])),
    tokensOf(answer),
  );
  const ids = events.map((e) => e.id ?? 0);
  assert.deepEqual(ids, [...new Set(ids)].sort((a, b) => a - b));
  assert.equal(events.at(-1)?.type, "done");
});
