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

/**
 * A real `fetch` whose network drops: the first `times` streamed responses matching `matches`
 * fail mid-body after `tokens` token frames (the server sees the connection close).
 */
export function cutAfterTokens(
  tokens: number,
  matches: (url: string) => boolean,
  times = 1,
): FetchLike & { cuts: number } {
  const flaky = Object.assign(
    async (input: string, init?: RequestInit): Promise<Response> => {
      const response = await fetch(input, init);
      if (!matches(input) || flaky.cuts >= times || response.body === null || response.status !== 200) {
        return response;
      }
      flaky.cuts += 1;
      const reader = response.body.getReader();
      let seen = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const { done, value } = await reader.read();
          if (done) return controller.close();
          controller.enqueue(value);
          seen += (new TextDecoder().decode(value).match(/"type":\s*"token"/g) ?? []).length;
          if (seen >= tokens) {
            await reader.cancel();
            controller.error(new TypeError("network connection lost"));
          }
        },
      });
      return new Response(body, { status: response.status, headers: response.headers });
    },
    { cuts: 0 },
  );
  return flaky;
}
