import type { Transport } from "./http.js";
import { enc, endsRun } from "./conversations.js";
import { EventStream } from "./sse.js";
import type { ConversationEvent, Run } from "./types.js";

export interface ApprovalResult {
  runId: string;
  toolCallId: string;
  approved: boolean;
  [key: string]: unknown;
}

export class Runs {
  constructor(private readonly transport: Transport) {}

  get(runId: string): Promise<Run> {
    return this.transport.request("GET", `/api/runs/${enc(runId)}`);
  }

  list(options: { agentId?: string; conversationId?: string; status?: string; since?: string; limit?: number } = {}): Promise<Run[]> {
    return this.transport.request("GET", "/api/runs", { params: { ...options } });
  }

  /** Approve a tool call the run waits on (the `approval_required` event names both ids). */
  approve(runId: string, toolCallId: string, options: { comment?: string } = {}): Promise<ApprovalResult> {
    return this.decide(runId, toolCallId, true, options.comment);
  }

  /** Reject it: the model is told the call was not approved and carries on. */
  reject(runId: string, toolCallId: string, options: { comment?: string } = {}): Promise<ApprovalResult> {
    return this.decide(runId, toolCallId, false, options.comment);
  }

  /** Stop the run: its stream ends with `error` (code `cancelled`). */
  cancel(runId: string): Promise<{ runId: string; status: string }> {
    return this.transport.request("POST", `/api/runs/${enc(runId)}/cancel`);
  }

  /** The run's events from its beginning (or after `lastEventId`) until `done` or `error`. */
  stream(runId: string, options: { lastEventId?: number; signal?: AbortSignal } = {}): EventStream<ConversationEvent> {
    return new EventStream(this.transport, `/api/runs/${enc(runId)}/stream`, {
      lastEventId: options.lastEventId ?? 0,
      stopWhen: endsRun,
      signal: options.signal,
    });
  }

  private decide(runId: string, toolCallId: string, approved: boolean, comment?: string): Promise<ApprovalResult> {
    const body: Record<string, unknown> = { toolCallId, approved };
    if (comment !== undefined) body["comment"] = comment;
    return this.transport.request("POST", `/api/runs/${enc(runId)}/approve`, { body });
  }
}
