// Lean standing watchers for bench:standings: ten thousand streams read in
// one process must measure the gateway, not Node's HTTP clients.
// - SSE: GET /api/boards/{board}/standing on its own HTTP/1.1 socket, the
//   response read off the socket (status line, chunked body, SSE events).
// - Connect: LiveService.WatchStanding (application/connect+proto) as a
//   stream of a shared HTTP/2 connection (test/harness/lean-h2.ts), its
//   envelopes parsed here.
// Each watcher reports the score of its own entry in every standing message
// (undefined while the user has no entry) and why it failed, if it does.
import net from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { LiveUpdateSchema, WatchStandingRequestSchema } from "@scoreboard/gen/scoreboard/v1/live_pb";
import type { LeanHttp2Connection, LeanStream } from "../test/harness/lean-h2.js";

export interface WatcherEvents {
  /** A standing message: the watched user's own score in it. */
  standing(score: number | undefined): void;
  /** The stream was refused or ended; said once. */
  failed(reason: string): void;
}

export interface Closable {
  close(): void;
}

export const WATCH_STANDING_PATH = "/scoreboard.v1.LiveService/WatchStanding";

/** An SSE standing stream on its own HTTP/1.1 connection. */
export function sseWatcher(gateway: string, board: string, around: number, token: string, events: WatcherEvents): Closable {
  const { hostname, port, host } = new URL(gateway);
  const socket = net.connect({ host: hostname, port: Number(port), noDelay: true });
  const path = `/api/boards/${encodeURIComponent(board)}/standing?around=${around}`;
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nAccept: text/event-stream\r\nAuthorization: Bearer ${token}\r\n\r\n`);
  let closed = false;
  let failed = false;
  const fail = (reason: string) => {
    if (failed || closed) return;
    failed = true;
    events.failed(reason);
    socket.destroy();
  };
  let head: Buffer | undefined = Buffer.alloc(0);
  let body: ((chunk: Buffer) => void) | undefined;
  const sse = sseEvents((event, data) => {
    if (event !== "standing") return;
    try {
      const entry = (JSON.parse(data) as { entry?: { score?: number | string } | null }).entry;
      events.standing(entry?.score === undefined ? undefined : Number(entry.score));
    } catch {
      fail(`an SSE standing event that is not JSON: ${data.slice(0, 120)}`);
    }
  });
  socket.on("data", (chunk: Buffer) => {
    if (body) return body(chunk);
    head = Buffer.concat([head!, chunk]);
    const end = head.indexOf("\r\n\r\n");
    if (end < 0) return;
    const headers = head.subarray(0, end).toString("latin1");
    const rest = head.subarray(end + 4);
    head = undefined;
    const status = /^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1];
    if (status !== "200") {
      // The refusal's JSON follows; a packet's worth of it says why.
      return fail(
        `HTTP ${status}: ${rest
          .toString("utf8")
          .replace(/\r\n[0-9a-f]+\r\n/g, "")
          .slice(0, 200)}`,
      );
    }
    body = /^transfer-encoding:\s*chunked/im.test(headers) ? dechunked(sse) : (c) => sse(c.toString("utf8"));
    if (rest.length > 0) body(rest);
  });
  socket.on("error", (err) => fail(`socket: ${err.message}`));
  socket.on("close", () => fail("the gateway closed the connection"));
  return {
    close: () => {
      closed = true;
      socket.destroy();
    },
  };
}

/** A chunked HTTP/1.1 body, decoded: `onText` gets each chunk's payload. */
function dechunked(onText: (text: string) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    for (;;) {
      const line = pending.indexOf("\r\n");
      if (line < 0) return;
      const size = Number.parseInt(pending.subarray(0, line).toString("latin1"), 16);
      if (pending.length < line + 2 + size + 2) return;
      if (size > 0) onText(pending.subarray(line + 2, line + 2 + size).toString("utf8"));
      pending = pending.subarray(line + 2 + size + 2);
    }
  };
}

/** SSE text in, (event, data) out per complete event; comments (heartbeats) skipped. */
function sseEvents(onEvent: (event: string, data: string) => void): (text: string) => void {
  let buffer = "";
  return (text) => {
    buffer += text;
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(line[5] === " " ? 6 : 5));
      }
      if (data.length > 0) onEvent(event, data.join("\n"));
    }
  };
}

/** LiveService.WatchStanding as one stream of a shared HTTP/2 connection (Connect, binary). */
export function connectWatcher(
  connection: LeanHttp2Connection,
  gateway: string,
  board: string,
  around: number,
  token: string,
  events: WatcherEvents,
): Closable {
  let failed = false;
  const fail = (reason: string) => {
    if (failed) return;
    failed = true;
    events.failed(reason);
    stream.close();
  };
  const stream: LeanStream = connection.request(
    {
      ":method": "POST",
      ":path": WATCH_STANDING_PATH,
      ":scheme": "http",
      ":authority": new URL(gateway).host,
      "content-type": "application/connect+proto",
      "connect-protocol-version": "1",
      authorization: `Bearer ${token}`,
    },
    enveloped(toBinary(WatchStandingRequestSchema, create(WatchStandingRequestSchema, { board, around }))),
    envelopes(fail, (flags, message) => {
      if (flags & 0x02) {
        // End of stream: a JSON object, with "error" when the call failed.
        const end = message.toString("utf8");
        return fail(end.includes('"error"') ? `Connect: ${end.slice(0, 200)}` : "the gateway ended the stream");
      }
      const update = fromBinary(LiveUpdateSchema, message);
      if (update.heartbeat || update.state.case !== "standing") return;
      const score = update.state.value.entry?.score;
      events.standing(score === undefined ? undefined : Number(score));
    }),
  );
  return stream;
}

function enveloped(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/**
 * A Connect stream body, fed DATA frame by frame: `onMessage` per envelope.
 * A body that starts with "{" is a refusal before the stream (an HTTP error
 * status with a JSON body; lean-h2 does not decode the status).
 */
function envelopes(fail: (reason: string) => void, onMessage: (flags: number, message: Buffer) => void): (chunk: Buffer) => void {
  let buffer: Buffer = Buffer.alloc(0);
  let first = true;
  return (chunk) => {
    if (first && chunk[0] === 0x7b) return fail(`HTTP error: ${chunk.toString("utf8").slice(0, 200)}`);
    first = false;
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
    while (buffer.length >= 5 && buffer.length >= 5 + buffer.readUInt32BE(1)) {
      const end = 5 + buffer.readUInt32BE(1);
      onMessage(buffer[0]!, buffer.subarray(5, end));
      buffer = buffer.subarray(end);
    }
  };
}
