import { ApiError, type Transport } from "./http.js";
import { EventStream, parseEnvelope, readSse, type StreamEnvelope } from "./sse.js";
import type { ConversationEvent } from "./types.js";

export interface Conversation {
  id: string;
  agentId: string;
  title: string | null;
  [key: string]: unknown;
}

export interface Message {
  id: string;
  role: "user" | "assistant" | "tool" | "system";
  content: string;
  [key: string]: unknown;
}

const RUN_END = new Set(["done", "error"]);

export const endsRun = (event: StreamEnvelope): boolean => RUN_END.has(event.data.type);

/**
 * The stream of one run's events, started by `sendMessageStream`. Iterate it with `for await`;
 * it ends after `done` or `error`, or when `close()` is called (or its signal aborts).
 */
export class MessageStream implements AsyncIterable<ConversationEvent> {
  /** The run this message started (for `client.runs.approve / reject / cancel`). */
  readonly runId: string;
  /** The id of the last event delivered. */
  lastEventId: number | null = null;
  /** How many times the stream reconnected. */
  reconnects = 0;
  private readonly controller = new AbortController();
  private iterated = false;

  constructor(
    private readonly transport: Transport,
    private readonly first: Response,
    signal: AbortSignal | undefined,
  ) {
    this.runId = first.headers.get("x-run-id") ?? "";
    if (signal?.aborted) this.controller.abort();
    else signal?.addEventListener("abort", () => this.controller.abort(), { once: true });
  }

  close(): void {
    this.controller.abort();
  }

  [Symbol.asyncIterator](): AsyncIterator<ConversationEvent> {
    if (this.iterated) throw new Error("a MessageStream can be iterated only once");
    this.iterated = true;
    return this.events();
  }

  private async *events(): AsyncGenerator<ConversationEvent> {
    const signal = this.controller.signal;
    try {
      const body = this.first.body;
      if (body !== null) {
        try {
          for await (const message of readSse(body, signal)) {
            const event = parseEnvelope(message);
            if (event === null) continue;
            if (event.id === null) {
              if (event.data["code"] === "slow_consumer") break; // resume below from the log
            } else {
              if (this.lastEventId !== null && event.id <= this.lastEventId) continue;
              this.lastEventId = event.id;
            }
            yield toConversationEvent(event);
            if (endsRun(event)) return;
          }
        } catch (error) {
          if (signal.aborted) return;
          if (error instanceof ApiError) throw error;
          // The connection dropped mid-answer: resume from the run's stream below.
        }
      }
      if (signal.aborted) return;
      // Pick the run up where the first connection left it: every event once, in order.
      const resumed = new EventStream(this.transport, `/api/runs/${this.runId}/stream`, {
        lastEventId: this.lastEventId ?? 0,
        stopWhen: endsRun,
        signal,
      });
      this.reconnects += 1;
      for await (const event of resumed.withIds()) {
        this.lastEventId = resumed.lastEventId;
        this.reconnects = 1 + resumed.reconnects;
        yield toConversationEvent(event);
      }
    } finally {
      this.controller.abort();
    }
  }
}

export function toConversationEvent(event: StreamEnvelope): ConversationEvent {
  return { ...event.data, id: event.id } as ConversationEvent;
}

export class Conversations {
  constructor(private readonly transport: Transport) {}

  create(body: { agentId: string; title?: string; multitask?: "enqueue" | "reject" | "interrupt" }): Promise<Conversation> {
    return this.transport.request("POST", "/api/conversations", { body });
  }

  get(conversationId: string): Promise<Conversation & { messages: Message[] }> {
    return this.transport.request("GET", `/api/conversations/${enc(conversationId)}`);
  }

  list(options: { agentId?: string; limit?: number } = {}): Promise<Conversation[]> {
    return this.transport.request("GET", "/api/conversations", { params: { ...options } });
  }

  delete(conversationId: string): Promise<void> {
    return this.transport.request("DELETE", `/api/conversations/${enc(conversationId)}`);
  }

  messages(conversationId: string): Promise<Message[]> {
    return this.transport.request("GET", `/api/conversations/${enc(conversationId)}/messages`);
  }

  /** Start a run without streaming: `{runId, messageId, status}`. */
  sendMessage(options: { conversationId: string; content: string }): Promise<{ runId: string; messageId: string; status: string }> {
    return this.transport.request("POST", `/api/conversations/${enc(options.conversationId)}/messages`, {
      body: { content: options.content },
    });
  }

  /**
   * Send a message and stream the run it starts: `token`, `tool_call`, `tool_result`,
   * `approval_required`, then `done` (with `usage` and `cost`) or `error`. If the connection drops,
   * the stream resumes by itself after the last event it delivered.
   */
  async sendMessageStream(options: {
    conversationId: string;
    content: string;
    signal?: AbortSignal;
  }): Promise<MessageStream> {
    const response = await this.transport.open(
      "POST",
      `/api/conversations/${enc(options.conversationId)}/messages`,
      {
        params: { stream: "true" },
        body: { content: options.content },
        headers: { Accept: "text/event-stream" },
        signal: options.signal,
      },
    );
    return new MessageStream(this.transport, response, options.signal);
  }

  /** Attach to the conversation's current (or latest) run, as a browser's EventSource does. */
  stream(conversationId: string, options: { lastEventId?: number; signal?: AbortSignal } = {}): EventStream<ConversationEvent> {
    return new EventStream(this.transport, `/api/conversations/${enc(conversationId)}/messages`, {
      params: { stream: "true" },
      lastEventId: options.lastEventId ?? null,
      stopWhen: endsRun,
      signal: options.signal,
    });
  }
}

export const enc = encodeURIComponent;
