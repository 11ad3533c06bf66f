import assert from "node:assert/strict";
import { test } from "node:test";

import type { CommandCenterEvent, DeeploydClient } from "../src/index.js";
import { client, conversation, scriptedAgent } from "./support.js";

async function answer(sdk: DeeploydClient, agentId: string): Promise<string> {
  const stream = await sdk.conversations.sendMessageStream({
    conversationId: await conversation(sdk, agentId),
    content: "hi",
  });
  for await (const event of stream) void event;
  return stream.runId;
}

test("the Command Center stream filtered by agentIds and eventTypes", async () => {
  const sdk = client();
  const watched = await scriptedAgent(sdk, [{ text: "Watched agent here." }], { name: "watched" });
  const other = await scriptedAgent(sdk, [{ text: "Other agent here." }], { name: "other" });

  let opened!: () => void;
  const open = new Promise<void>((resolve) => (opened = resolve));
  const stream = sdk.commandCenter.stream({
    agentIds: [watched],
    eventTypes: ["run:started", "run:completed", "run:error"],
    onOpen: () => opened(),
  });
  const seen: CommandCenterEvent[] = [];
  let watchedRun = "";
  const reading = (async () => {
    for await (const event of stream) {
      seen.push(event);
      if (event.type === "run:completed" && event.runId === watchedRun) break;
    }
  })();
  await open;
  const otherRun = await answer(sdk, other); // completes first: must not show up
  watchedRun = await answer(sdk, watched);
  await reading;

  assert.ok(seen.length >= 2);
  assert.ok(seen.every((e) => e.agentId === watched), JSON.stringify(seen));
  assert.ok(seen.every((e) => ["run:started", "run:completed", "run:error"].includes(e.type)));
  assert.ok(!seen.some((e) => e.runId === otherRun));
  const mine = seen.filter((e) => e.runId === watchedRun).map((e) => e.type);
  assert.deepEqual(mine, ["run:started", "run:completed"]);
  const completed = seen.at(-1);
  assert.equal(completed?.run?.status, "completed");
  assert.ok((completed?.run?.tokenUsage.total ?? 0) > 0);
  assert.ok(stream.closed);
});
