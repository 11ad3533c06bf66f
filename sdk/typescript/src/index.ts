/**
 * `@deeployd/sdk`: the TypeScript client of Deeployd Streaming. Runs in browsers and in
 * Node >= 18 with nothing but `fetch`.
 *
 *     const client = new DeeploydClient({ baseUrl: "http://localhost:8000", apiKey });
 *     const stream = await client.conversations.sendMessageStream({ conversationId, content });
 *     for await (const event of stream) if (event.type === "token") process.stdout.write(event.token);
 */

import { A2A } from "./a2a.js";
import { CommandCenter } from "./commandCenter.js";
import { Conversations } from "./conversations.js";
import { type ClientOptions, type RequestOptions, Transport } from "./http.js";
import { Runs } from "./runs.js";
import { EventStream, type EventStreamOptions } from "./sse.js";
import { Streaming } from "./streaming.js";
import { Voice } from "./voice.js";

export class DeeploydClient {
  readonly conversations: Conversations;
  readonly runs: Runs;
  readonly streaming: Streaming;
  readonly commandCenter: CommandCenter;
  readonly a2a: A2A;
  readonly voice: Voice;
  readonly agents: Agents;
  /** The HTTP layer (base URL, Authorization header), for endpoints without a method here. */
  readonly transport: Transport;

  constructor(options: ClientOptions) {
    this.transport = new Transport(options);
    this.conversations = new Conversations(this.transport);
    this.runs = new Runs(this.transport);
    this.streaming = new Streaming(this.transport);
    this.commandCenter = new CommandCenter(this.transport);
    this.a2a = new A2A(this.transport);
    this.voice = new Voice(this.transport);
    this.agents = new Agents(this.transport);
  }

  /** Any JSON endpoint: `client.request('GET', '/api/me')`. */
  request<T = unknown>(method: string, path: string, options?: RequestOptions): Promise<T> {
    return this.transport.request<T>(method, path, options);
  }

  /** Any SSE endpoint, reconnecting and resuming with Last-Event-ID. */
  stream(path: string, options?: EventStreamOptions): EventStream {
    return new EventStream(this.transport, path, options);
  }

  me(): Promise<{ orgId: string; [key: string]: unknown }> {
    return this.transport.request("GET", "/api/me");
  }
}

/** `client.agents`: agent CRUD (bodies as in the API: camelCase). */
export class Agents {
  constructor(private readonly transport: Transport) {}

  create(body: Record<string, unknown>): Promise<{ id: string; name: string; [key: string]: unknown }> {
    return this.transport.request("POST", "/api/agents", { body });
  }

  get(agentId: string): Promise<{ id: string; name: string; [key: string]: unknown }> {
    return this.transport.request("GET", `/api/agents/${encodeURIComponent(agentId)}`);
  }

  list(): Promise<{ id: string; name: string; [key: string]: unknown }[]> {
    return this.transport.request("GET", "/api/agents");
  }
}

export { A2A } from "./a2a.js";
export { CommandCenter, type CommandCenterStreamOptions } from "./commandCenter.js";
export { Conversations, MessageStream, type Conversation, type Message } from "./conversations.js";
export { ApiError, Transport, type ClientOptions, type FetchLike, type RequestOptions } from "./http.js";
export { Runs, type ApprovalResult } from "./runs.js";
export { EventStream, SseParser, readSse, type EventStreamOptions, type SseMessage, type StreamEnvelope } from "./sse.js";
export { Streaming } from "./streaming.js";
export { Voice, type TtsOptions } from "./voice.js";
export type * from "./types.js";
