import type { Transport } from "./http.js";
import { enc } from "./conversations.js";
import { EventStream, type StreamEnvelope } from "./sse.js";
import type { A2AMessage, A2ATask, TaskStreamEvent } from "./types.js";

const endsTask = (event: StreamEnvelope): boolean =>
  event.data.type === "statusUpdate" && event.data["final"] === true;

/** `client.a2a`: A2A tasks through the platform's REST API. */
export class A2A {
  constructor(private readonly transport: Transport) {}

  /** Start a task: `message` is text or an A2A message (`{role, parts: [{text}]}`). */
  createTask(options: { agentId: string; message: string | A2AMessage; contextId?: string }): Promise<A2ATask> {
    return this.transport.request("POST", "/api/a2a/tasks", { body: options });
  }

  getTask(taskId: string): Promise<A2ATask> {
    return this.transport.request("GET", `/api/a2a/tasks/${enc(taskId)}`);
  }

  listTasks(options: { agentId?: string; contextId?: string; state?: string; pageSize?: number; pageToken?: string } = {}): Promise<{ tasks: A2ATask[]; nextPageToken?: string }> {
    return this.transport.request("GET", "/api/a2a/tasks", { params: { ...options } });
  }

  /** Answer a task waiting in `input-required`; resolves with the task. */
  sendMessage(taskId: string, content: string): Promise<A2ATask> {
    return this.transport.request("POST", `/api/a2a/tasks/${enc(taskId)}/messages`, { body: { content } });
  }

  cancelTask(taskId: string): Promise<A2ATask> {
    return this.transport.request("POST", `/api/a2a/tasks/${enc(taskId)}/cancel`);
  }

  /**
   * `task` (the current state) on each connection, then `message` / `statusUpdate` /
   * `artifactUpdate` events until the final status; reconnects and resumes by event id.
   */
  streamTask(taskId: string, options: { lastEventId?: number; signal?: AbortSignal } = {}): EventStream<TaskStreamEvent> {
    return new EventStream(this.transport, `/api/a2a/tasks/${enc(taskId)}/stream`, {
      lastEventId: options.lastEventId ?? null,
      stopWhen: endsTask,
      signal: options.signal,
    });
  }
}
