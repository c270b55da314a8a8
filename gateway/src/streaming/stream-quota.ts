import { Code, ConnectError, createContextKey } from "@connectrpc/connect";

/** The client address of an RPC (socket, or X-Forwarded-For behind TRUSTED_PROXY_HOPS), set by main.ts. */
export const clientAddressKey = createContextKey<string>("unknown", { description: "the caller's client address" });

/**
 * Open leaderboard streams per client address (SSE, WebSocket, Connect,
 * gRPC-Web and gRPC alike; GATEWAY_MAX_STREAMS_PER_IP). Each stream holds a
 * socket, timers and a place in a feed's fan-out, and each distinct board
 * and limit an upstream stream: one client must not be able to open them
 * without bound. The address is the client's, also behind trusted proxies.
 */
export class StreamQuota {
  private readonly open = new Map<string, number>();

  /** 0: no cap. */
  constructor(private readonly maxPerAddress: number) {}

  /** Takes a stream for `address`; returns its release (idempotent), or throws RESOURCE_EXHAUSTED. */
  take(address: string): () => void {
    const count = this.open.get(address) ?? 0;
    if (this.maxPerAddress > 0 && count >= this.maxPerAddress) {
      throw new ConnectError(`too many open streams from this address (at most ${this.maxPerAddress}); close one first`, Code.ResourceExhausted);
    }
    this.open.set(address, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(address) ?? 1) - 1;
      if (left > 0) this.open.set(address, left);
      else this.open.delete(address);
    };
  }
}
