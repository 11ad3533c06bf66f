import assert from "node:assert/strict";
import { test } from "node:test";

import type { TaskStreamEvent } from "../src/index.js";
import { client, scriptedAgent } from "./support.js";

const FINAL = "The weather in Paris is sunny today, enjoy it.";

test("an A2A task goes to input-required, is answered with sendMessage, and completes", async () => {
  const sdk = client();
  const agentId = await scriptedAgent(
    sdk,
    [
      { toolCalls: [{ name: "ask_user", arguments: { question: "Which city?" } }] },
      { text: "The weather in {{lastToolResult.answer}} is sunny today, enjoy it." },
    ],
    { tools: ["ask_user"], tokenDelayMs: 2 },
  );
  const task = await sdk.a2a.createTask({ agentId, message: "What's the weather?" });
  assert.equal(task.status.state, "TASK_STATE_SUBMITTED");

  const events: TaskStreamEvent[] = [];
  for await (const event of sdk.a2a.streamTask(task.id)) {
    events.push(event);
    if (event.type === "statusUpdate" && event.state === "input-required") {
      assert.equal(event.status.message?.parts[0]?.text, "Which city?");
      const answered = await sdk.a2a.sendMessage(task.id, "Paris");
      assert.equal(answered.id, task.id);
    }
  }

  assert.equal(events[0]?.type, "task");
  assert.equal(events[0]?.id, null); // the snapshot does not move the resume point
  const states = events.flatMap((e) => (e.type === "statusUpdate" ? [e.state] : []));
  assert.deepEqual(states, ["submitted", "working", "input-required", "working", "completed"]);
  const last = events.at(-1);
  assert.ok(last?.type === "statusUpdate" && last.final);
  const chunks = events.flatMap((e) => (e.type === "artifactUpdate" && !e.lastChunk ? [e.chunk ?? ""] : []));
  assert.equal(chunks.join(""), FINAL);
  const done = await sdk.a2a.getTask(task.id);
  assert.equal(done.status.state, "TASK_STATE_COMPLETED");
  assert.equal(done.artifacts?.[0]?.parts[0]?.text, FINAL);

  // Resuming after input-required replays exactly what followed it.
  const mark = events.find((e) => e.type === "statusUpdate" && e.state === "input-required")?.id ?? 0;
  const resumed: TaskStreamEvent[] = [];
  for await (const event of sdk.a2a.streamTask(task.id, { lastEventId: mark })) resumed.push(event);
  assert.deepEqual(
    resumed.map((e) => e.id),
    [null, ...events.flatMap((e) => (e.id !== null && e.id > mark ? [e.id] : []))],
  );
});
