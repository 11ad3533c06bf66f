// EventSource with the product docs' best practices: access_token auth, reconnection with
// exponential backoff (capped at 30 s) that resumes from the last event id, explicit close.
// `endOn(data)` marks a stream's last event (a run's `done`): the stream closes after it instead
// of reconnecting to a stream that has ended.
import { session } from "./api.js";

export function openStream(path, params, onEvent, { onStatus, endOn } = {}) {
  let source = null;
  let lastEventId = null;
  let attempts = 0;
  let timer = null;
  let closed = false;

  function url() {
    const query = new URLSearchParams({ ...(params || {}), access_token: session.key });
    // A new EventSource cannot send Last-Event-ID itself, so we pass it as a query parameter.
    if (lastEventId !== null) query.set("lastEventId", lastEventId);
    return `${path}?${query}`;
  }

  function connect() {
    if (closed) return;
    source = new EventSource(url());
    source.onopen = () => { attempts = 0; onStatus && onStatus("open"); };
    source.onmessage = (message) => {
      if (message.lastEventId) lastEventId = message.lastEventId;
      let data;
      try { data = JSON.parse(message.data); } catch { return; }
      onEvent(data, message.lastEventId);
      if (endOn && endOn(data)) {
        closed = true;
        source.close();
        onStatus && onStatus("ended");
      }
    };
    source.onerror = () => {
      source.close();
      if (closed) return;
      attempts += 1;
      const delay = Math.min(1000 * Math.pow(2, attempts - 1), 30000);
      onStatus && onStatus(`reconnecting in ${Math.round(delay / 1000)}s`);
      timer = setTimeout(connect, delay);
    };
  }

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (source) source.close();
    },
    get lastEventId() { return lastEventId; },
  };
}

// Batch UI updates per animation frame (the docs' "Buffer for UI Updates").
export function frameBatcher(apply) {
  let pending = [];
  let scheduled = false;
  return (item) => {
    pending.push(item);
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      const items = pending;
      pending = [];
      scheduled = false;
      apply(items);
    });
  };
}
