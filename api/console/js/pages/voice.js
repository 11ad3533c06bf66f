// Voice: type text, pick a voice, hear it while it is still being synthesised (MediaSource).
import { ApiError, get, session } from "../api.js";
import { h } from "../app.js";

export async function mount(root) {
  const text = h("textarea", { id: "voice-text", rows: 5 }, "Hello! This audio is streamed sentence by sentence. The first words play before the rest is synthesised.");
  const voice = h("select", { id: "voice-voice" });
  const format = h("select", { id: "voice-format" }, h("option", { value: "mp3" }, "mp3"));
  const speak = h("button", { id: "voice-speak" }, "Speak");
  const stop = h("button", { class: "secondary", disabled: true }, "Stop");
  const audio = h("audio", { id: "voice-audio", controls: true });
  const info = h("p", { class: "muted", id: "voice-info" });
  root.append(h("div", { class: "card" }, h("h3", {}, "Text to speech"), text,
    h("div", { class: "row" }, "Voice", voice, "Format", format, speak, stop), audio, info));

  try {
    // The voices of the provider requests use by default (the six familiar names work everywhere).
    const body = await get("/api/voice/voices");
    const provider = body.providers.find((p) => p.name === body.defaultProvider) || body.providers[0];
    for (const v of provider.voices) {
      voice.append(h("option", { value: v.id }, v.description ? `${v.id} — ${v.description}` : v.id));
    }
  } catch (error) { info.textContent = String(error); }

  let controller = null;
  stop.addEventListener("click", () => controller && controller.abort());
  speak.addEventListener("click", async () => {
    controller = new AbortController();
    speak.disabled = true;
    stop.disabled = false;
    const media = new MediaSource();
    audio.src = URL.createObjectURL(media);
    await new Promise((resolve) => media.addEventListener("sourceopen", resolve, { once: true }));
    const buffer = media.addSourceBuffer("audio/mpeg");
    let bytes = 0;
    const started = performance.now();
    try {
      const response = await fetch("/api/voice/tts/stream", {
        method: "POST", signal: controller.signal,
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${session.key}` },
        body: JSON.stringify({ text: text.value, voice: voice.value, format: "mp3" }),
      });
      if (!response.ok) throw new ApiError(response.status, await response.text());
      const reader = response.body.getReader();
      audio.play().catch(() => {});
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!bytes) info.textContent = `first audio after ${Math.round(performance.now() - started)} ms`;
        bytes += value.byteLength;
        buffer.appendBuffer(value);
        await new Promise((resolve) => buffer.addEventListener("updateend", resolve, { once: true }));
      }
      media.endOfStream();
      info.textContent += ` · ${bytes} bytes`;
      info.dataset.bytes = String(bytes);
    } catch (error) {
      info.textContent = error.name === "AbortError" ? "stopped" : String(error);
    } finally {
      speak.disabled = false;
      stop.disabled = true;
    }
  });
  return () => controller && controller.abort();
}
