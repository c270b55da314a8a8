// A test double of what push uses of a NATS connection: subscriptions with
// callbacks (wildcards as NATS matches them) and a status feed the test
// drives; and the top lists ranking's announcements carry. Push's tests only.
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Msg, NatsConnection, NatsError, Status } from "nats";
import { BoardChangedSchema, BoardMovedSchema, type BoardMoved } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { LeaderboardEntrySchema, type LeaderboardEntry } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { Subjects, subjectCovers } from "@scoreboard/platform/nats";

type Callback = (err: NatsError | null, msg: Msg) => void;

export interface FakeSubscription {
  subject: string;
  callback: Callback;
  unsubscribed: boolean;
}

export class FakeNats {
  readonly subscriptions: FakeSubscription[] = [];
  private readonly statusListeners: Array<(status: Status) => void> = [];

  get connection(): NatsConnection {
    return this as unknown as NatsConnection;
  }

  subscribe(subject: string, options: { callback: Callback }) {
    const sub: FakeSubscription = { subject, callback: options.callback, unsubscribed: false };
    this.subscriptions.push(sub);
    return {
      unsubscribe: () => {
        sub.unsubscribed = true;
      },
    };
  }

  /** The subjects subscribed to now. */
  get subscribed(): string[] {
    return this.subscriptions.filter((s) => !s.unsubscribed).map((s) => s.subject);
  }

  status(): AsyncIterable<Status> {
    const queued: Status[] = [];
    let waiting: ((result: IteratorResult<Status>) => void) | undefined;
    this.statusListeners.push((status) => {
      if (waiting) {
        const resolve = waiting;
        waiting = undefined;
        resolve({ value: status, done: false });
      } else queued.push(status);
    });
    return {
      [Symbol.asyncIterator]: () => ({
        next: () => {
          const status = queued.shift();
          if (status) return Promise.resolve({ value: status, done: false });
          return new Promise<IteratorResult<Status>>((resolve) => {
            waiting = resolve;
          });
        },
      }),
    };
  }

  /** Tells every status listener that the connection came back. */
  reconnect(): void {
    for (const listener of this.statusListeners) listener({ type: "reconnect", data: "fake" } as Status);
  }

  /** Delivers a BoardChanged message as ranking would publish it. */
  boardChanged(board: string, top: LeaderboardEntry[], options: { epoch?: string; asOfMs?: number } = {}): void {
    const changed = create(BoardChangedSchema, { board, top, epoch: options.epoch ?? "", asOf: timestampFromMs(options.asOfMs ?? Date.now()) });
    this.deliver(Subjects.boardChanged(board), toBinary(BoardChangedSchema, changed));
  }

  /** Delivers a BoardMoved message as ranking would publish it. */
  boardMoved(
    board: string,
    moved: { epoch: string; moves?: Array<{ userId: string; fromScore?: bigint; toScore: bigint }>; everything?: boolean },
  ): BoardMoved {
    const message = create(BoardMovedSchema, { board, asOf: timestampFromMs(Date.now()), ...moved });
    this.deliver(Subjects.boardMoved(board), toBinary(BoardMovedSchema, message));
    return message;
  }

  private deliver(subject: string, data: Uint8Array): void {
    for (const sub of [...this.subscriptions]) {
      if (!sub.unsubscribed && subjectCovers(sub.subject, subject)) sub.callback(null, { subject, data } as Msg);
    }
  }
}

/** A top list of `count` users; `bump` gives one user a different score. */
export function top(count: number, bump?: { userId: string; score: number }): LeaderboardEntry[] {
  return Array.from({ length: count }, (_, i) =>
    create(LeaderboardEntrySchema, {
      rank: BigInt(i + 1),
      userId: `user-${i + 1}`,
      username: `User ${i + 1}`,
      score: BigInt(bump?.userId === `user-${i + 1}` ? bump.score : 1000 - i),
    }),
  );
}
