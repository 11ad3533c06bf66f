import type { Transport } from "./http.js";
import { enc } from "./conversations.js";

export interface TtsOptions {
  text: string;
  voice?: string;
  format?: "mp3" | "wav" | "opus" | "aac" | "flac" | "pcm" | string;
  speed?: number;
  provider?: string;
  language?: string;
  signal?: AbortSignal;
}

/** `client.voice`: text-to-speech streamed as audio. */
export class Voice {
  constructor(private readonly transport: Transport) {}

  /**
   * The audio as the server synthesises it: a `ReadableStream` of bytes whose chunks end on frame
   * boundaries (so each can be handed to a decoder as it arrives).
   */
  async ttsStream(options: TtsOptions): Promise<ReadableStream<Uint8Array>> {
    const { signal, ...rest } = options;
    const body = { voice: "alloy", format: "mp3", ...rest };
    const response = await this.transport.open("POST", "/api/voice/tts/stream", { body, signal });
    if (response.body === null) throw new Error("the TTS response has no body");
    return response.body;
  }

  /** The audio of a run's answer, sentence by sentence while its tokens arrive. */
  async runSpeech(runId: string, options: { voice?: string; format?: string; signal?: AbortSignal } = {}): Promise<ReadableStream<Uint8Array>> {
    const response = await this.transport.open("GET", `/api/runs/${enc(runId)}/speech`, {
      params: { voice: options.voice ?? "alloy", format: options.format ?? "mp3" },
      signal: options.signal,
    });
    if (response.body === null) throw new Error("the speech response has no body");
    return response.body;
  }

  voices(): Promise<Record<string, unknown>> {
    return this.transport.request("GET", "/api/voice/voices");
  }
}
