/**
 * `@deeployd/sdk/ai`: a Vercel AI SDK (`ai` v6) `ChatTransport`, so `useChat` from
 * `@ai-sdk/react` (or any `AbstractChat`) talks to a Deeployd conversation.
 *
 *     const transport = new DeeploydChatTransport({ client, conversationId });
 *     const { messages, sendMessage, addToolApprovalResponse } = useChat({
 *       transport,
 *       sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
 *     });
 *
 * What the UI gets: text deltas (`text` parts); each tool call as a `dynamic-tool` part with its
 * input and, once it ran, its output; a call that needs a human's approval as that part in state
 * `approval-requested` — answer it with `addToolApprovalResponse({id, approved})` and the next
 * request approves (or rejects) it on the run and streams the rest of the answer into the same
 * message; `finish` carries `{runId, usage, cost}` as message metadata.
 *
 * Only types are imported from `ai`: at run time this module needs nothing but `fetch`.
 */

import type { ChatTransport, UIMessage, UIMessageChunk } from "ai";

import type { DeeploydClient } from "./index.js";
import type { ConversationEvent, TokenUsage } from "./types.js";

export interface DeeploydChatTransportOptions {
  client: DeeploydClient;
  /** The conversation to talk to: an id, or a function of `useChat`'s chat id (default: the chat id). */
  conversationId?: string | ((chatId: string) => string | Promise<string>);
}

/** The `finish` chunk's message metadata. */
export interface DeeploydMessageMetadata {
  runId: string;
  usage?: TokenUsage;
  cost?: number;
}

/** An approval's id: where the run waits (run, tool call) and the event to resume after. */
interface ApprovalRef {
  runId: string;
  toolCallId: string;
  afterEventId: number;
}

const APPROVAL_PREFIX = "deeployd";

export function approvalId(ref: ApprovalRef): string {
  return [APPROVAL_PREFIX, ref.runId, ref.toolCallId, ref.afterEventId].join(":");
}

export function parseApprovalId(id: string): ApprovalRef | null {
  const parts = id.split(":");
  if (parts.length !== 4 || parts[0] !== APPROVAL_PREFIX) return null;
  const [, runId, toolCallId, after] = parts as [string, string, string, string];
  if (!/^\d+$/.test(after)) return null;
  return { runId, toolCallId, afterEventId: Number(after) };
}

interface Decision extends ApprovalRef {
  approved: boolean;
  reason?: string;
}

/** The approvals the user answered in the last assistant message, not yet sent to the run. */
function answeredApprovals(messages: UIMessage[]): Decision[] {
  const last = messages.at(-1);
  if (last === undefined || last.role !== "assistant") return [];
  const out: Decision[] = [];
  for (const part of last.parts) {
    if (!("state" in part) || part.state !== "approval-responded") continue;
    const ref = parseApprovalId(part.approval.id);
    if (ref === null) continue;
    const decision: Decision = { ...ref, approved: part.approval.approved };
    if (part.approval.reason !== undefined) decision.reason = part.approval.reason;
    out.push(decision);
  }
  return out;
}

function userText(message: UIMessage | undefined): string {
  if (message === undefined || message.role !== "user") {
    throw new Error("DeeploydChatTransport: the last message must be the user's");
  }
  return message.parts.flatMap((p) => (p.type === "text" ? [p.text] : [])).join("");
}

export class DeeploydChatTransport<UI_MESSAGE extends UIMessage = UIMessage> implements ChatTransport<UI_MESSAGE> {
  private readonly client: DeeploydClient;
  private readonly conversation: DeeploydChatTransportOptions["conversationId"];

  constructor(options: DeeploydChatTransportOptions) {
    this.client = options.client;
    this.conversation = options.conversationId;
  }

  async sendMessages(options: Parameters<ChatTransport<UI_MESSAGE>["sendMessages"]>[0]): Promise<ReadableStream<UIMessageChunk>> {
    const signal = options.abortSignal;
    const decisions = answeredApprovals(options.messages);
    if (decisions.length > 0) {
      for (const d of decisions) {
        const extra = d.reason !== undefined ? { comment: d.reason } : {};
        if (d.approved) await this.client.runs.approve(d.runId, d.toolCallId, extra);
        else await this.client.runs.reject(d.runId, d.toolCallId, extra);
      }
      // Continue the same assistant message from where the run stopped to wait.
      const first = decisions[0]!;
      const events = this.client.runs.stream(first.runId, { lastEventId: first.afterEventId, signal });
      const denied = new Set(decisions.filter((d) => !d.approved).map((d) => d.toolCallId));
      return toChunks(events, first.runId, { continuing: true, denied });
    }
    const conversationId = await this.conversationId(options.chatId);
    const stream = await this.client.conversations.sendMessageStream({
      conversationId,
      content: userText(options.messages.at(-1)),
      ...(signal ? { signal } : {}),
    });
    return toChunks(stream, stream.runId, { continuing: false, denied: new Set() });
  }

  /** Deeployd runs are resumed by the SDK's own streams; there is nothing to re-attach here. */
  async reconnectToStream(): Promise<ReadableStream<UIMessageChunk> | null> {
    return null;
  }

  private async conversationId(chatId: string): Promise<string> {
    const c = this.conversation;
    if (c === undefined) return chatId;
    return typeof c === "string" ? c : await c(chatId);
  }
}

/** Deeployd run events -> UI message chunks. */
export function toChunks(
  events: AsyncIterable<ConversationEvent>,
  runId: string,
  { continuing, denied }: { continuing: boolean; denied: Set<string> },
): ReadableStream<UIMessageChunk> {
  const iterator = events[Symbol.asyncIterator]();
  let textId: string | null = null;
  let parts = 0;
  const announced = new Set<string>();
  let started = false;

  return new ReadableStream<UIMessageChunk>({
    async pull(controller) {
      const emit = (chunk: UIMessageChunk): void => controller.enqueue(chunk);
      const endText = (): void => {
        if (textId !== null) emit({ type: "text-end", id: textId });
        textId = null;
      };
      if (!started) {
        started = true;
        if (!continuing) emit({ type: "start", messageMetadata: { runId } satisfies DeeploydMessageMetadata });
        emit({ type: "start-step" });
      }
      let next: IteratorResult<ConversationEvent>;
      try {
        next = await iterator.next();
      } catch (error) {
        endText();
        emit({ type: "error", errorText: error instanceof Error ? error.message : String(error) });
        controller.close();
        return;
      }
      if (next.done) {
        // Ended without done/error (aborted): close the message cleanly.
        endText();
        controller.close();
        return;
      }
      const event = next.value;
      switch (event.type) {
        case "token":
          if (textId === null) {
            textId = `${runId}-text-${(parts += 1)}`;
            emit({ type: "text-start", id: textId });
          }
          emit({ type: "text-delta", id: textId, delta: event.token });
          break;
        case "tool_call":
          endText();
          announced.add(event.toolCallId);
          emit({
            type: "tool-input-available",
            toolCallId: event.toolCallId,
            toolName: event.name,
            input: event.arguments,
            dynamic: true,
          });
          break;
        case "approval_required":
          endText();
          if (!announced.has(event.toolCallId)) {
            announced.add(event.toolCallId);
            emit({ type: "tool-input-available", toolCallId: event.toolCallId, toolName: event.name, input: event.arguments, dynamic: true });
          }
          emit({
            type: "tool-approval-request",
            toolCallId: event.toolCallId,
            approvalId: approvalId({ runId: event.runId, toolCallId: event.toolCallId, afterEventId: event.id ?? 0 }),
          });
          // The run waits for a human: this response ends here; answering the approval sends the
          // next request, which continues the run.
          emit({ type: "finish-step" });
          emit({ type: "finish", finishReason: "tool-calls", messageMetadata: { runId } satisfies DeeploydMessageMetadata });
          controller.close();
          await iterator.return?.();
          return;
        case "tool_result":
          if (denied.has(event.toolCallId)) emit({ type: "tool-output-denied", toolCallId: event.toolCallId });
          else emit({ type: "tool-output-available", toolCallId: event.toolCallId, output: event.result, dynamic: true });
          break;
        case "done":
          endText();
          emit({ type: "finish-step" });
          emit({
            type: "finish",
            finishReason: "stop",
            messageMetadata: { runId, usage: event.usage, cost: event.cost } satisfies DeeploydMessageMetadata,
          });
          controller.close();
          return;
        case "error":
          endText();
          emit({ type: "error", errorText: event.message });
          controller.close();
          return;
      }
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}
