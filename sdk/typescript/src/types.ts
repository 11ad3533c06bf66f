/** The API's JSON shapes (camelCase, as on the wire). */

export interface TokenUsage {
  prompt: number;
  completion: number;
  total: number;
}

// --- conversation (run) stream events -------------------------------------------------------

export interface TokenEvent {
  type: "token";
  token: string;
  turn?: number;
}
export interface ToolCallEvent {
  type: "tool_call";
  name: string;
  arguments: Record<string, unknown>;
  toolCallId: string;
}
export interface ToolResultEvent {
  type: "tool_result";
  toolCallId: string;
  name: string;
  result: unknown;
}
export interface ApprovalRequiredEvent {
  type: "approval_required";
  toolCallId: string;
  name: string;
  arguments: Record<string, unknown>;
  /** Where to send the decision: `client.runs.approve(runId, toolCallId)`. */
  runId: string;
}
export interface DoneEvent {
  type: "done";
  usage: TokenUsage;
  cost: number;
}
export interface ErrorEvent {
  type: "error";
  message: string;
  code?: string;
}
/** What `sendMessageStream` yields; `id` is the event's id in the log (null for notices). */
export type ConversationEvent = (
  | TokenEvent
  | ToolCallEvent
  | ToolResultEvent
  | ApprovalRequiredEvent
  | DoneEvent
  | ErrorEvent
) & { id: number | null };

// --- Command Center ---------------------------------------------------------------------------

export type CommandCenterEventType =
  | "run:started"
  | "run:status_changed"
  | "run:progress"
  | "run:tool_started"
  | "run:tool_completed"
  | "run:llm_call"
  | "run:memory_op"
  | "run:error"
  | "run:completed"
  | "alert:triggered"
  | "alert:resolved";

/** A run as carried by lifecycle events (the pipelines' `agent_execution` item shape). */
export interface RunItem {
  id: string;
  agentId: string;
  agentName: string | null;
  conversationId: string | null;
  status: string;
  tokenUsage: TokenUsage;
  cost: number;
  startedAt: string | null;
  completedAt: string | null;
  error: string | null;
}

export interface CommandCenterEvent {
  type: CommandCenterEventType;
  id: number | null;
  runId?: string;
  agentId?: string;
  run?: RunItem;
  tokens?: number;
  cost?: number;
  tool?: string;
  result?: unknown;
  alert?: Record<string, unknown>;
  [key: string]: unknown;
}

// --- A2A ----------------------------------------------------------------------------------------

export interface A2APart {
  text?: string;
  data?: unknown;
  [key: string]: unknown;
}
export interface A2AMessage {
  role: string;
  parts: A2APart[];
  messageId?: string;
  [key: string]: unknown;
}
export interface A2ATask {
  id: string;
  contextId: string;
  status: { state: string; message?: A2AMessage; timestamp?: string };
  history?: A2AMessage[];
  artifacts?: { artifactId?: string; name?: string; parts: A2APart[] }[];
  [key: string]: unknown;
}

export type TaskState =
  | "submitted"
  | "working"
  | "input-required"
  | "completed"
  | "failed"
  | "canceled"
  | "rejected"
  | "auth-required";

export type TaskStreamEvent = { id: number | null } & (
  | { type: "task"; task: A2ATask }
  | { type: "message"; message: A2AMessage; [key: string]: unknown }
  | {
      type: "statusUpdate";
      state: TaskState;
      status: A2ATask["status"];
      message?: A2AMessage;
      final: boolean;
      [key: string]: unknown;
    }
  | {
      type: "artifactUpdate";
      artifact: { artifactId?: string; name?: string; parts: A2APart[] };
      chunk?: string;
      lastChunk: boolean;
      [key: string]: unknown;
    }
);

// --- pipelines -----------------------------------------------------------------------------------

export interface PipelineStage {
  type: string;
  config?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface PipelineConfig {
  name: string;
  description?: string;
  source: PipelineStage;
  transforms?: PipelineStage[];
  destination: PipelineStage;
  options?: Record<string, unknown>;
}

export type PipelineStatus = "created" | "running" | "paused" | "stopped" | "failed" | string;

export interface Pipeline extends PipelineConfig {
  id: string;
  status: PipelineStatus;
  transforms: PipelineStage[];
  createdAt: string;
  updatedAt: string;
  workflowId?: string | null;
  temporalUrl?: string | null;
  [key: string]: unknown;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface PipelineMetrics {
  itemsProcessed: number;
  itemsFailed: number;
  itemsFiltered: number;
  /** Items per second over the last minute. */
  throughput: number;
  /** Ingest-to-delivered latency, milliseconds. */
  latency: { avg: number; p50?: number; p95?: number; p99?: number; [key: string]: unknown };
  /** pending / maxPending: above 0.8 the pipeline is falling behind. */
  backpressure: number;
  pending: number;
  lastCheckpoint: Record<string, unknown> | null;
  [key: string]: unknown;
}

export interface PipelineHealth {
  status: "healthy" | "degraded" | "unhealthy";
  reasons: string[];
  pipelineStatus: PipelineStatus;
  backpressure: number;
  pending: number;
  checkedAt: string;
}

export interface Accepted {
  accepted: number;
  offsets?: number[];
  firstOffset: number;
  lastOffset: number;
  [key: string]: unknown;
}

export interface Checkpoint {
  id: string;
  offset: number;
  [key: string]: unknown;
}

// --- runs ------------------------------------------------------------------------------------------

export interface Run {
  id: string;
  agentId: string;
  conversationId: string | null;
  status: string;
  tokenUsage: TokenUsage;
  cost: number;
  [key: string]: unknown;
}
