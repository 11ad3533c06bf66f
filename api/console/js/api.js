// The console's HTTP client: the API key lives in sessionStorage, never in localStorage.
const KEY = "deeployd.apiKey";

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) { value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, body) {
    super(typeof body === "object" && body ? JSON.stringify(body) : String(body));
    this.status = status;
    this.body = body;
  }
  // Validation errors arrive as ["path.to.field: reason", ...].
  get fieldErrors() { return (this.body && this.body.errors) || []; }
}

export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${session.key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = text;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
export const put = (path, body) => api("PUT", path, body);
export const del = (path) => api("DELETE", path);
