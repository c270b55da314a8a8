// Clients of the gateway's SSE and WebSocket streams for tests: each reads in
// the background and keeps what arrived, parsed, for the test to look at.
import { WebSocket } from "ws";

/** One SSE event: its name, its id: line when it had one, its data parsed as JSON. */
export interface SseEvent<T = Record<string, unknown>> {
  event: string;
  id?: string;
  data: T;
}

/**
 * An SSE stream read until stopped. `opened` is the response (a refusal is
 * left unread); `done` settles when the stream ends or is stopped.
 */
export function readSse<T = Record<string, unknown>>(url: string, headers: Record<string, string> = {}) {
  const abort = new AbortController();
  const events: SseEvent<T>[] = [];
  const opened = fetch(url, { signal: abort.signal, headers });
  const done = opened
    .then(async (res) => {
      if (res.status !== 200) return;
      const decoder = new TextDecoder();
      let text = "";
      for await (const chunk of res.body!) {
        text += decoder.decode(chunk as Uint8Array, { stream: true });
        for (let end = text.indexOf("\n\n"); end >= 0; end = text.indexOf("\n\n")) {
          const frame = text.slice(0, end);
          text = text.slice(end + 2);
          const event = /^event: (.*)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (event && data) events.push({ event, id: /^id: (.*)$/m.exec(frame)?.[1], data: JSON.parse(data) as T });
        }
      }
    })
    .catch(() => undefined);
  return {
    opened,
    events,
    done,
    stop: async () => {
      abort.abort();
      await done;
    },
  };
}

/**
 * A WebSocket whose JSON messages are kept. `opened` resolves on open and
 * rejects with "HTTP <status> <body>" when the upgrade is refused.
 */
export function openWebSocket<T = Record<string, unknown>>(url: string, protocols?: string[]) {
  const ws = new WebSocket(url, protocols);
  const messages: T[] = [];
  ws.on("message", (data) => messages.push(JSON.parse(String(data)) as T));
  const opened = new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk));
      res.on("end", () => reject(new Error(`HTTP ${res.statusCode} ${body}`)));
    });
    ws.once("error", reject);
  });
  return { ws, messages, opened };
}
