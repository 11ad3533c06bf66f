import assert from "node:assert/strict";
import { test } from "node:test";

import { AbstractChat, type ChatInit, type ChatState, type ChatStatus, type UIMessage, lastAssistantMessageIsCompleteWithApprovalResponses } from "ai";

import { DeeploydChatTransport, type DeeploydMessageMetadata } from "../src/ai.js";
import { client, conversation, env } from "./support.js";

/** The state a framework binding (React's useChat, Vue, Svelte) keeps; here plain fields. */
class PlainState implements ChatState<UIMessage> {
  status: ChatStatus = "ready";
  error: Error | undefined = undefined;
  messages: UIMessage[] = [];
  pushMessage = (message: UIMessage): void => {
    this.messages = [...this.messages, message];
  };
  popMessage = (): void => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (index: number, message: UIMessage): void => {
    this.messages = this.messages.map((m, i) => (i === index ? message : m));
  };
  snapshot = <T>(thing: T): T => structuredClone(thing);
}

/** What `useChat` builds on: the `ai` package's own AbstractChat with a state. */
class Chat extends AbstractChat<UIMessage> {
  constructor(init: Omit<ChatInit<UIMessage>, "messages">) {
    super({ ...init, state: new PlainState() });
  }
}

test("the AI SDK's chat streams a demo-agent answer with tool calls and an approval", async () => {
  const sdk = client();
  const conversationId = await conversation(sdk, env("DEEPLOYD_DEMO_AGENT_ID"));
  let finished = 0;
  const chat = new Chat({
    id: conversationId, // the default: the chat id is the conversation id
    transport: new DeeploydChatTransport({ client: sdk }),
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
    onFinish: () => {
      finished += 1;
    },
  });

  await chat.sendMessage({ text: "What is (2 + 3) * 7?" });
  assert.equal(chat.error, undefined);
  let answer = chat.lastMessage;
  assert.equal(answer?.role, "assistant");
  const tools = answer!.parts.filter((p) => p.type === "dynamic-tool");
  assert.deepEqual(
    tools.map((p) => [p.toolName, p.state]),
    [
      ["calculator", "output-available"],
      ["http_request", "approval-requested"],
    ],
  );
  const calculator = tools[0]!;
  assert.deepEqual(calculator.input, { expression: "(2 + 3) * 7" });
  assert.ok(calculator.state === "output-available" && JSON.stringify(calculator.output).includes("35"));
  const waiting = tools[1]!;
  assert.ok(waiting.state === "approval-requested");

  // The user declines the web request in the UI: the chat sends on its own and the run goes on.
  await chat.addToolApprovalResponse({ id: waiting.approval.id, approved: false, reason: "not now" });
  const deadline = Date.now() + 30_000;
  while (finished < 2 || chat.status !== "ready") {
    assert.ok(Date.now() < deadline, `chat stuck in ${chat.status}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(chat.error, undefined);
  assert.equal(chat.messages.length, 2); // one user message, one assistant message
  answer = chat.lastMessage!;
  const http = answer.parts.find((p) => p.type === "dynamic-tool" && p.toolName === "http_request");
  assert.equal(http?.type === "dynamic-tool" ? http.state : undefined, "output-denied");
  const text = answer.parts.flatMap((p) => (p.type === "text" ? [p.text] : [])).join("");
  assert.match(text, /^Let me work that out\./);
  assert.match(text, /The calculator says 35\./);
  assert.match(text, /Done: \(2 \+ 3\) \* 7 = 35/);
  const metadata = answer.metadata as DeeploydMessageMetadata;
  assert.match(metadata.runId, /^run_/);
  assert.ok((metadata.usage?.total ?? 0) > 0);
  assert.equal(typeof metadata.cost, "number");
  const run = await sdk.runs.get(metadata.runId);
  assert.equal(run.status, "completed");
});
