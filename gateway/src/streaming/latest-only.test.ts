import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { LatestOnlyWriter } from "./latest-only.js";

/** A body that takes `room` writes, then is full until drained. */
class SmallBody extends EventEmitter {
  readonly written: string[] = [];
  constructor(private room: number) {
    super();
  }
  write(chunk: string): boolean {
    this.written.push(chunk);
    this.room -= 1;
    return this.room > 0;
  }
  drain(room: number): void {
    this.room = room;
    this.emit("drain");
  }
}

describe("LatestOnlyWriter", () => {
  it("keeps only the newest value while the body is full", () => {
    const body = new SmallBody(1);
    const writer = new LatestOnlyWriter<string, string>(body, (v) => v);
    for (const v of ["a", "b", "c", "d"]) writer.send(v);
    expect(body.written).toEqual(["a"]);
    body.drain(5);
    expect(body.written).toEqual(["a", "d"]);
    writer.stop();
  });

  it("with keyOf keeps the newest value of each key, in the order they first waited, across drains", () => {
    const body = new SmallBody(1);
    const writer = new LatestOnlyWriter<{ key: string; n: number }, string>(body, (v) => `${v.key}${v.n}`, { keyOf: (v) => v.key });
    writer.send({ key: "top", n: 1 });
    writer.send({ key: "standing", n: 1 });
    writer.send({ key: "top", n: 2 });
    writer.send({ key: "standing", n: 2 });
    writer.send({ key: "other", n: 1 });
    writer.send({ key: "top", n: 3 });
    expect(body.written).toEqual(["top1"]);
    body.drain(1); // room for one: the first waiting key goes, the rest keep waiting
    expect(body.written).toEqual(["top1", "standing2"]);
    writer.send({ key: "standing", n: 3 });
    body.drain(5);
    expect(body.written).toEqual(["top1", "standing2", "top3", "other1", "standing3"]);
    writer.stop();
  });
});
