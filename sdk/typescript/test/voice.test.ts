import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";

import { client, env } from "./support.js";

const BITRATES_V1_L3 = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
const BITRATES_V2_L3 = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
const RATES: Record<number, number[]> = { 3: [44100, 48000, 32000], 2: [22050, 24000, 16000], 0: [11025, 12000, 8000] };

/** Walk MPEG audio layer III frames; returns how many whole frames the bytes hold. */
function mp3Frames(bytes: Uint8Array): { frames: number; sampleRate: number } {
  let at = 0;
  if (bytes[0] === 0x49 && bytes[1] === 0x44 && bytes[2] === 0x33) {
    const size = ((bytes[6]! & 0x7f) << 21) | ((bytes[7]! & 0x7f) << 14) | ((bytes[8]! & 0x7f) << 7) | (bytes[9]! & 0x7f);
    at = 10 + size;
  }
  let frames = 0;
  let sampleRate = 0;
  while (at + 4 <= bytes.length) {
    const b1 = bytes[at + 1]!;
    const b2 = bytes[at + 2]!;
    assert.ok(bytes[at] === 0xff && (b1 & 0xe0) === 0xe0, `no frame sync at byte ${at}`);
    const version = (b1 >> 3) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    assert.equal((b1 >> 1) & 3, 1, "not layer III");
    const bitrate = (version === 3 ? BITRATES_V1_L3 : BITRATES_V2_L3)[(b2 >> 4) & 15];
    const rate = RATES[version]?.[(b2 >> 2) & 3];
    assert.ok(bitrate && rate, `bad frame header at byte ${at}`);
    sampleRate = rate;
    const length = Math.floor(((version === 3 ? 144 : 72) * bitrate * 1000) / rate) + ((b2 >> 1) & 1);
    at += length;
    frames += 1;
  }
  assert.equal(at, bytes.length, "the audio does not end on a frame boundary");
  return { frames, sampleRate };
}

test("TTS audio streams as MP3 frames that decode", async () => {
  const sdk = client();
  const stream = await sdk.voice.ttsStream({ text: "Hello, how can I help you today?", voice: "alloy", format: "mp3" });
  assert.ok(stream instanceof ReadableStream);
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  const audio = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    audio.set(chunk, offset);
    offset += chunk.length;
  }
  const { frames, sampleRate } = mp3Frames(audio);
  assert.ok(frames > 20, `${frames} frames`);
  assert.ok(sampleRate >= 8000);
  // The harness decodes the same bytes with a real MP3 decoder.
  await writeFile(join(env("DEEPLOYD_SDK_OUT"), "tts.mp3"), audio);

  await assert.rejects(
    sdk.voice.ttsStream({ text: "", voice: "alloy", format: "mp3" }),
    (error: unknown) => (error as { status?: number }).status === 422,
  );
});
