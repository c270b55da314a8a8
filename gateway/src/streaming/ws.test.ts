import type { WebSocket } from "ws";
import { describe, expect, it } from "vitest";
import { LatestOnlyWriter } from "./latest-only.js";
import { fakeLiveDeps, standingState, topUpdate } from "./live-fakes.js";
import { liveMessageJson } from "./live-json.js";
import { liveSubscription, streamLive } from "./live.js";
import { WebSocketBody } from "./ws.js";

/** A WebSocket whose peer stopped reading: every message stays buffered until `flush`. */
class StuckWebSocket {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  readonly sent: string[] = [];
  private callbacks: Array<() => void> = [];

  send(message: string, callback?: () => void) {
    this.sent.push(message);
    this.bufferedAmount += message.length;
    if (callback) this.callbacks.push(callback);
  }

  flush() {
    this.bufferedAmount = 0;
    const callbacks = this.callbacks;
    this.callbacks = [];
    for (const callback of callbacks) callback();
  }
}

describe("a WebSocket client that stops reading", () => {
  it("is written through the latest-only writer: past 64 KiB buffered only the latest state waits, sent when the socket drains", () => {
    const ws = new StuckWebSocket();
    const big = "x".repeat(70 * 1024);
    const writer = new LatestOnlyWriter<number, string[]>(new WebSocketBody(ws as unknown as WebSocket), (n) => [`${n}:${big}`, `${n}:end`]);
    writer.send(1);
    for (let n = 2; n <= 1_000; n++) writer.send(n);
    // One update's two messages went out; the other 999 states were not queued.
    expect(ws.sent.map((m) => m.split(":")[0])).toEqual(["1", "1"]);
    ws.flush();
    expect(ws.sent.map((m) => m.split(":")[0])).toEqual(["1", "1", "1000", "1000"]);
    writer.stop();
  });
});

describe("a live WebSocket stream whose client stops reading", () => {
  it("keeps the latest state of each subscription, sent when the socket drains", () => {
    const ws = new StuckWebSocket();
    const { deps, feeds, standings } = fakeLiveDeps();
    const top = liveSubscription("", "global", { kind: "top", limit: 10 }, undefined);
    const standing = liveSubscription("", "laps", { kind: "standing", around: 0 }, undefined);
    const live = {
      subscriptions: [
        { subscription: top, board: "global" },
        { subscription: standing, board: "laps" },
      ],
      userId: "alice",
      release: () => {},
    };
    const stop = streamLive(deps, live, new WebSocketBody(ws as unknown as WebSocket), (m) => (m ? [liveMessageJson(m)] : []));
    const padding = "x".repeat(70 * 1024);
    feeds.publish("global", topUpdate({ [padding]: 1 }, 1));
    for (let i = 2; i <= 300; i++) {
      standings.publish("laps", "alice", standingState("alice", 3, i, i));
      feeds.publish("global", topUpdate({ bob: i }, i));
    }
    expect(ws.sent).toHaveLength(1);
    ws.flush();
    const after = ws.sent.slice(1).map((m) => JSON.parse(m) as { subscription: string; entry?: { score: number }; entries?: { score: number }[] });
    expect(after.map((m) => [m.subscription, m.entry?.score ?? m.entries?.[0]?.score])).toEqual([
      ["standing:laps", 300],
      ["top:global", 300],
    ]);
    stop();
    expect(feeds.subscriptions).toHaveLength(0);
  });
});
