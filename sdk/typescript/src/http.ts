/** The HTTP layer every resource uses: base URL, the key in the Authorization header, errors. */

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** The API's base URL, e.g. `http://localhost:8000` ("" for same-origin in a browser). */
  baseUrl?: string;
  /** An API key (`dk_…`), sent as `Authorization: Bearer …`. */
  apiKey: string;
  /** A `fetch` implementation (defaults to the global one). */
  fetch?: FetchLike;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
  /**
   * `fetch`'s credentials mode. Default `"omit"`: the key is the only credential, and the SDK
   * tracks its own resume points (browser cookies would make the server treat a new stream of an
   * ended run as a browser's reconnect, answered 204).
   */
  credentials?: RequestCredentials;
}

/** A non-2xx answer. `body` is the parsed JSON error (e.g. `{detail, errors}`) or its text. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Headers = new Headers(),
  ) {
    super(`HTTP ${status}: ${typeof body === "string" ? body : JSON.stringify(body)}`);
    this.name = "ApiError";
  }
}

export interface RequestOptions {
  params?: Record<string, string | number | boolean | undefined> | undefined;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
}

export class Transport {
  readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly fetchImpl: FetchLike;
  private readonly extraHeaders: Record<string, string>;
  private readonly credentials: RequestCredentials;

  constructor(options: ClientOptions) {
    this.baseUrl = (options.baseUrl ?? "").replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    const impl = options.fetch ?? globalThis.fetch;
    if (typeof impl !== "function") throw new Error("no fetch implementation available");
    this.fetchImpl = (input, init) => impl(input, init);
    this.extraHeaders = options.headers ?? {};
    this.credentials = options.credentials ?? "omit";
  }

  url(path: string, params?: RequestOptions["params"]): string {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params ?? {})) {
      if (value !== undefined) query.set(key, String(value));
    }
    const qs = query.toString();
    return `${this.baseUrl}${path}${qs ? `?${qs}` : ""}`;
  }

  /** Send a request; resolves with the response once its headers are in (non-2xx throws). */
  async open(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = {
      ...this.extraHeaders,
      Authorization: `Bearer ${this.apiKey}`,
      ...(options.headers ?? {}),
    };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    const init: RequestInit = { method, headers, credentials: this.credentials };
    if (body !== undefined) init.body = body;
    if (options.signal !== undefined) init.signal = options.signal;
    const response = await this.fetchImpl(this.url(path, options.params), init);
    if (!response.ok) {
      throw new ApiError(response.status, await readBody(response), response.headers);
    }
    return response;
  }

  /** A JSON request: the parsed answer (undefined for 204). */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.open(method, path, {
      ...options,
      headers: { Accept: "application/json", ...(options.headers ?? {}) },
    });
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text().catch(() => "");
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
