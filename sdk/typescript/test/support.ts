/** What every test shares: the real API the harness started (URL and key come from the env). */

import { DeeploydClient, type FetchLike } from "../src/index.js";

export function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through tests/test_sdk_typescript.py`);
  return value;
}

export const API_URL = (): string => env("DEEPLOYD_API_URL");
export const API_KEY = (): string => env("DEEPLOYD_API_KEY");

export function client(fetchImpl?: FetchLike): DeeploydClient {
  return new DeeploydClient({ baseUrl: API_URL(), apiKey: API_KEY(), ...(fetchImpl ? { fetch: fetchImpl } : {}) });
}

export interface ScriptTurn {
  text?: string;
  toolCalls?: { name: string; arguments: Record<string, unknown> }[];
}

/** An agent on the scripted provider (a deterministic stand-in for a model, not an LLM). */
export async function scriptedAgent(
  sdk: DeeploydClient,
  script: ScriptTurn[],
  options: { tools?: string[]; approvalRequired?: string[]; tokenDelayMs?: number; name?: string } = {},
): Promise<string> {
  const agent = await sdk.agents.create({
    name: options.name ?? "sdk test agent",
    provider: "scripted",
    model: "scripted",
    tools: options.tools ?? [],
    approvalRequired: options.approvalRequired ?? [],
    providerOptions: { script, tokenDelayMs: options.tokenDelayMs ?? 0 },
  });
  return agent.id;
}

export async function conversation(sdk: DeeploydClient, agentId: string): Promise<string> {
  return (await sdk.conversations.create({ agentId })).id;
}

/** Poll `probe` until `until(value)` holds (or fail after `timeoutMs`). */
export async function eventually<T>(
  probe: () => Promise<T>,
  until: (value: T) => boolean,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (until(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not reached in ${timeoutMs} ms; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The words the scripted provider streams for `text`, one token per word (with its spacing). */
export function tokensOf(text: string): string[] {
  return text.match(/\S+\s*/g) ?? [];
}
