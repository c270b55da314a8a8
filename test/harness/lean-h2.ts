// A minimal cleartext HTTP/2 client for benchmarks and tests: many server
// streams on one connection, their DATA frames handed to a callback per
// stream, and (for tests of slow clients) control over flow control.
// node:http2's client spends a JS stream object and several events per frame,
// so ten thousand streams read in one process would measure that client
// rather than the server; here one socket read carries every frame of a
// burst and each frame costs a slice. It speaks only what a streaming client
// needs: the preface, SETTINGS (acked), PING (answered), one huge window so
// no WINDOW_UPDATE is ever owed (or a small one that only openWindows()
// widens: a client that stops reading), HEADERS with literal (unindexed) fields, DATA,
// RST_STREAM and GOAWAY. Response headers are not decoded (HPACK state is
// only needed to read them); a stream's status is taken as its first DATA.
import net from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8 } as const;
const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;
const MAX_WINDOW = 2 ** 31 - 1;

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK string's length: an integer with a 7-bit prefix (RFC 7541 5.1), Huffman bit clear. */
function stringLength(length: number): Buffer {
  if (length < 127) return Buffer.from([length]);
  const bytes = [127];
  let rest = length - 127;
  while (rest >= 128) {
    bytes.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** HPACK "literal header field without indexing, new name", no Huffman (a bearer token fits in one HEADERS frame). */
function headerBlock(headers: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(headers)) {
    const n = Buffer.from(name, "latin1");
    const v = Buffer.from(value, "latin1");
    parts.push(Buffer.from([0x00]), stringLength(n.length), n, stringLength(v.length), v);
  }
  const block = Buffer.concat(parts);
  if (block.length > 16_384) throw new Error("headers too long for this client's single HEADERS frame");
  return block;
}

export interface LeanStream {
  /** Resets the stream (the server sees the client go away). */
  close(): void;
}

export class LeanHttp2Connection {
  private readonly socket: net.Socket;
  private readonly handlers = new Map<number, (data: Buffer) => void>();
  private nextStreamId = 1;
  private pending: Buffer = Buffer.alloc(0);
  readonly ready: Promise<void>;

  /** `streamWindow`: bytes the server may send on a stream before openWindows() (default: all it wants). */
  constructor(url: string, options: { streamWindow?: number } = {}) {
    const { hostname, port } = new URL(url);
    this.socket = net.connect({ host: hostname, port: Number(port), noDelay: true });
    this.socket.on("error", () => {});
    // Our SETTINGS: server may open no streams to us, and each stream's window.
    const settings = Buffer.alloc(12);
    settings.writeUInt16BE(0x3, 0); // MAX_CONCURRENT_STREAMS
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(0x4, 6); // INITIAL_WINDOW_SIZE
    settings.writeUInt32BE(options.streamWindow ?? MAX_WINDOW, 8);
    const connectionWindow = Buffer.alloc(4);
    connectionWindow.writeUInt32BE(MAX_WINDOW - 65_535, 0);
    this.socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0, settings), frame(FRAME.WINDOW_UPDATE, 0, 0, connectionWindow)]));
    this.socket.on("data", (chunk: Buffer) => this.read(chunk));
    this.ready = new Promise((resolve, reject) => {
      this.socket.once("connect", resolve);
      this.socket.once("error", reject);
    });
  }

  /** Opens a stream; `onData` gets each DATA frame's payload. A body ends the request after it. */
  request(headers: Record<string, string>, body: Buffer | undefined, onData: (data: Buffer) => void): LeanStream {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    this.handlers.set(id, onData);
    const block = headerBlock(headers);
    const frames = [frame(FRAME.HEADERS, FLAG.END_HEADERS | (body ? 0 : FLAG.END_STREAM), id, block)];
    if (body) frames.push(frame(FRAME.DATA, FLAG.END_STREAM, id, body));
    this.socket.write(Buffer.concat(frames));
    return {
      close: () => {
        if (!this.handlers.delete(id) || this.socket.destroyed) return;
        const code = Buffer.alloc(4);
        code.writeUInt32BE(0x8, 0); // CANCEL
        this.socket.write(frame(FRAME.RST_STREAM, 0, id, code));
      },
    };
  }

  /** Lets the server send on every open stream as much as it wants from now on (a slow client catching up). */
  openWindows(): void {
    const increment = Buffer.alloc(4);
    increment.writeUInt32BE(MAX_WINDOW - 65_535, 0);
    this.socket.write(Buffer.concat([...this.handlers.keys()].map((id) => frame(FRAME.WINDOW_UPDATE, 0, id, increment))));
  }

  close(): void {
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    let buffer = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (buffer.length >= 9) {
      const length = buffer.readUIntBE(0, 3);
      if (buffer.length < 9 + length) break;
      const type = buffer[3]!;
      const flags = buffer[4]!;
      const streamId = buffer.readUInt32BE(5) & 0x7fffffff;
      let payload = buffer.subarray(9, 9 + length);
      buffer = buffer.subarray(9 + length);
      if (type === FRAME.DATA) {
        if (flags & FLAG.PADDED) payload = payload.subarray(1, payload.length - payload[0]!);
        if (payload.length > 0) this.handlers.get(streamId)?.(payload);
        if (flags & FLAG.END_STREAM) this.handlers.delete(streamId);
      } else if (type === FRAME.SETTINGS && !(flags & FLAG.ACK)) {
        this.socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      } else if (type === FRAME.PING && !(flags & FLAG.ACK)) {
        this.socket.write(frame(FRAME.PING, FLAG.ACK, 0, Buffer.from(payload)));
      } else if (type === FRAME.RST_STREAM) {
        this.handlers.delete(streamId);
      } else if (type === FRAME.GOAWAY) {
        this.socket.end();
      }
      // HEADERS (status, trailers), WINDOW_UPDATE and the rest need nothing from a reader.
    }
    this.pending = buffer.length === 0 ? Buffer.alloc(0) : Buffer.from(buffer);
  }
}
