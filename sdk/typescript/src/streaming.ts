import type { Transport } from "./http.js";
import { enc } from "./conversations.js";
import { EventStream } from "./sse.js";
import type { Accepted, Checkpoint, Page, Pipeline, PipelineConfig, PipelineHealth, PipelineMetrics } from "./types.js";

const BASE = "/api/streaming";

/** `client.streaming`: data pipelines — create, control, push items, metrics, checkpoints. */
export class Streaming {
  constructor(private readonly transport: Transport) {}

  createPipeline(config: PipelineConfig): Promise<Pipeline> {
    return this.transport.request("POST", `${BASE}/pipelines`, { body: { transforms: [], ...config } });
  }

  /** One page of pipelines: `{items, total, limit, offset}`. */
  listPipelines(options: { limit?: number; offset?: number; status?: string } = {}): Promise<Page<Pipeline>> {
    return this.transport.request("GET", `${BASE}/pipelines`, { params: { ...options } });
  }

  getPipeline(pipelineId: string): Promise<Pipeline> {
    return this.transport.request("GET", `${BASE}/pipelines/${enc(pipelineId)}`);
  }

  updatePipeline(pipelineId: string, config: PipelineConfig): Promise<Pipeline> {
    return this.transport.request("PUT", `${BASE}/pipelines/${enc(pipelineId)}`, { body: config });
  }

  deletePipeline(pipelineId: string): Promise<void> {
    return this.transport.request("DELETE", `${BASE}/pipelines/${enc(pipelineId)}`);
  }

  startPipeline(pipelineId: string): Promise<Pipeline> {
    return this.control(pipelineId, "start");
  }

  pausePipeline(pipelineId: string): Promise<Pipeline> {
    return this.control(pipelineId, "pause");
  }

  resumePipeline(pipelineId: string): Promise<Pipeline> {
    return this.control(pipelineId, "resume");
  }

  stopPipeline(pipelineId: string): Promise<Pipeline> {
    return this.control(pipelineId, "stop");
  }

  /** Push one item; resolves once it is durable. A 429 (backpressure) throws an ApiError. */
  processItem(pipelineId: string, item: Record<string, unknown>): Promise<Accepted> {
    return this.transport.request("POST", `${BASE}/pipelines/${enc(pipelineId)}/process`, { body: item });
  }

  /** Push up to 10,000 items in one durable append. */
  processBatch(pipelineId: string, items: Record<string, unknown>[]): Promise<Accepted> {
    return this.transport.request("POST", `${BASE}/pipelines/${enc(pipelineId)}/batch`, { body: items });
  }

  getPipelineMetrics(pipelineId: string): Promise<PipelineMetrics> {
    return this.transport.request("GET", `${BASE}/pipelines/${enc(pipelineId)}/metrics`);
  }

  getPipelineHealth(pipelineId: string): Promise<PipelineHealth> {
    return this.transport.request("GET", `${BASE}/pipelines/${enc(pipelineId)}/health`);
  }

  /** Snapshot the pipeline's state (for recovery): `{id, offset}`. */
  createCheckpoint(pipelineId: string): Promise<Checkpoint> {
    return this.transport.request("POST", `${BASE}/pipelines/${enc(pipelineId)}/checkpoints`);
  }

  async listCheckpoints(pipelineId: string): Promise<Checkpoint[]> {
    const page = await this.transport.request<{ items: Checkpoint[] }>(
      "GET",
      `${BASE}/pipelines/${enc(pipelineId)}/checkpoints`,
    );
    return page.items;
  }

  restoreCheckpoint(pipelineId: string, checkpointId: string): Promise<Record<string, unknown>> {
    return this.transport.request(
      "POST",
      `${BASE}/pipelines/${enc(pipelineId)}/checkpoints/${enc(checkpointId)}/restore`,
    );
  }

  /** Organisation-wide: pipelines by status, items accepted / processed / failed, pending. */
  getStats(): Promise<Record<string, unknown>> {
    return this.transport.request("GET", `${BASE}/stats`);
  }

  /** The pipeline's live `status`, `metrics`, `delivery_failed`, … events (resumable). */
  stream(pipelineId: string, options: { lastEventId?: number; signal?: AbortSignal } = {}): EventStream {
    return new EventStream(this.transport, `${BASE}/pipelines/${enc(pipelineId)}/stream`, {
      lastEventId: options.lastEventId ?? null,
      signal: options.signal,
    });
  }

  private control(pipelineId: string, action: string): Promise<Pipeline> {
    return this.transport.request("POST", `${BASE}/pipelines/${enc(pipelineId)}/${action}`);
  }
}
