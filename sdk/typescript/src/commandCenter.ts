import type { Transport } from "./http.js";
import { EventStream } from "./sse.js";
import type { CommandCenterEvent, CommandCenterEventType } from "./types.js";

export interface CommandCenterStreamOptions {
  /** Only run events of these agents (alerts always pass). */
  agentIds?: string[];
  /** Only these event types, e.g. `['run:started', 'run:completed', 'run:error']`. */
  eventTypes?: (CommandCenterEventType | string)[];
  /** Resume after this id (0 replays the organisation's stored events). */
  lastEventId?: number;
  signal?: AbortSignal;
  /** Called when the connection is established: events from then on will arrive. */
  onOpen?: () => void;
}

/** `client.commandCenter`: the organisation's live run and alert events. */
export class CommandCenter {
  constructor(private readonly transport: Transport) {}

  stream(options: CommandCenterStreamOptions = {}): EventStream<CommandCenterEvent> {
    const params: Record<string, string> = {};
    if (options.agentIds?.length) params["agentIds"] = options.agentIds.join(",");
    if (options.eventTypes?.length) params["eventTypes"] = options.eventTypes.join(",");
    return new EventStream(this.transport, "/api/command-center/stream", {
      params,
      lastEventId: options.lastEventId ?? null,
      signal: options.signal,
      onOpen: options.onOpen,
    });
  }

  liveRuns(): Promise<Record<string, unknown>[]> {
    return this.transport.request("GET", "/api/command-center/runs/live");
  }

  alerts(options: { status?: string } = {}): Promise<Record<string, unknown>[]> {
    return this.transport.request("GET", "/api/command-center/alerts", { params: { ...options } });
  }
}
