import assert from "node:assert/strict";
import { test } from "node:test";

import { client, conversation, env, eventually, scriptedAgent } from "./support.js";

/** The docs' Mixpanel destination, with `baseUrl` pointing at the harness's local stand-in. */
function mixpanel() {
  return {
    type: "analytics",
    config: {
      provider: "mixpanel",
      projectToken: "${secrets.MIXPANEL_TOKEN}",
      baseUrl: env("DEEPLOYD_MIXPANEL_URL"),
    },
  };
}

test("the docs' agent-events-to-analytics pipeline: created, started, metrics, checkpoint", async () => {
  const sdk = client();
  const agentId = await scriptedAgent(sdk, [{ text: "All done here." }], { name: "analytics agent" });
  // The pipeline as the docs write it, with this agent's id.
  const pipeline = await sdk.streaming.createPipeline({
    name: "agent-events-to-analytics",
    source: { type: "agent_execution", agentIds: [agentId, "agent-456"] },
    transforms: [
      { type: "filter", config: { field: "status", operator: "eq", value: "completed" } },
      {
        type: "map",
        config: {
          expression: {
            event_type: '"agent_completion"',
            agent_id: "agentId",
            tokens: "tokenUsage.total",
            cost: "cost",
            timestamp: "completedAt",
          },
        },
      },
    ],
    destination: mixpanel(),
  });
  assert.match(pipeline.id, /^pl_/);
  assert.equal(pipeline.name, "agent-events-to-analytics");
  const started = await sdk.streaming.startPipeline(pipeline.id);
  assert.equal(started.status, "running");

  // One completed run of the agent becomes one analytics event.
  const stream = await sdk.conversations.sendMessageStream({
    conversationId: await conversation(sdk, agentId),
    content: "hello",
  });
  for await (const event of stream) void event;
  const metrics = await eventually(
    () => sdk.streaming.getPipelineMetrics(pipeline.id),
    (m) => m.itemsProcessed >= 1,
    45_000,
  );
  assert.equal(metrics.itemsFailed, 0);
  assert.equal(typeof metrics.throughput, "number");
  assert.equal(typeof metrics.latency.avg, "number");
  assert.ok(metrics.backpressure >= 0 && metrics.backpressure <= 1);

  const checkpoint = await sdk.streaming.createCheckpoint(pipeline.id);
  assert.match(checkpoint.id, /\S/);
  assert.ok(checkpoint.offset >= 0);
  const checkpoints = await sdk.streaming.listCheckpoints(pipeline.id);
  assert.ok(checkpoints.some((c) => c.id === checkpoint.id));
  const after = await sdk.streaming.getPipelineMetrics(pipeline.id);
  assert.ok(after.lastCheckpoint !== null);

  const health = await sdk.streaming.getPipelineHealth(pipeline.id);
  assert.equal(health.pipelineStatus, "running");
  assert.ok(["healthy", "degraded"].includes(health.status), JSON.stringify(health));

  assert.equal((await sdk.streaming.getPipeline(pipeline.id)).id, pipeline.id);
  const page = await sdk.streaming.listPipelines();
  assert.ok(page.items.some((p) => p.id === pipeline.id));
  assert.equal((await sdk.streaming.stopPipeline(pipeline.id)).status, "stopped");
});

test("items pushed one by one and in a batch; pause, resume, stop and global stats", async () => {
  const sdk = client();
  const pipeline = await sdk.streaming.createPipeline({
    name: "pushed-items-to-analytics",
    source: { type: "webhook" },
    destination: mixpanel(),
  });
  await sdk.streaming.startPipeline(pipeline.id);
  const item = (n: number) => ({ event_type: "pushed", agent_id: `agent-${n}`, tokens: n });
  const one = await sdk.streaming.processItem(pipeline.id, item(1));
  assert.equal(one.accepted, 1);
  const many = await sdk.streaming.processBatch(pipeline.id, [item(2), item(3), item(4)]);
  assert.equal(many.accepted, 3);
  assert.equal(many.lastOffset - many.firstOffset, 2);
  await eventually(
    () => sdk.streaming.getPipelineMetrics(pipeline.id),
    (m) => m.itemsProcessed >= 4,
  );

  assert.equal((await sdk.streaming.pausePipeline(pipeline.id)).status, "paused");
  assert.equal((await sdk.streaming.resumePipeline(pipeline.id)).status, "running");
  const stats = await sdk.streaming.getStats();
  assert.equal(typeof stats, "object");
  assert.equal((await sdk.streaming.stopPipeline(pipeline.id)).status, "stopped");

  await assert.rejects(
    sdk.streaming.createPipeline({ name: "bad", source: { type: "nope" }, destination: { type: "webhook" } }),
    (error: unknown) => (error as { status?: number }).status === 422,
  );
});
