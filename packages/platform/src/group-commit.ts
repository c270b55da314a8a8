import { ROOT_CONTEXT, context, type Context } from "@opentelemetry/api";

/**
 * Sends work in batches without adding latency: the first item goes at once;
 * items that arrive while `maxInFlight` batches are being written wait and go
 * together in the next one. Under load that turns many transactions (or
 * calls) into a few; when idle it is a plain call.
 *
 * A failed batch is retried item by item, so only the culprit sees the
 * error: right for a transaction, which a failure rolls back whole. A batch
 * whose failure may have applied part of it (a call that timed out) must not
 * be resent: pass `retryEachOnFailure: false` and every item gets the error.
 *
 * A batch of one runs in its submitter's trace context, so what it does (a
 * SQL statement's span) joins that caller's trace, as a plain call would. A
 * batch of several is no step of any one caller's and runs in no trace;
 * otherwise it would land in whichever trace happened to start the pump.
 */
export class GroupCommit<In, Out> {
  private readonly queue: Array<{ item: In; caller: Context; resolve: (out: Out) => void; reject: (err: unknown) => void }> = [];
  private inFlight = 0;

  constructor(
    /** Writes one batch; answers one result per item, in order. */
    private readonly writeBatch: (items: In[]) => Promise<Out[]>,
    private readonly maxInFlight: number,
    private readonly maxBatch: number,
    private readonly options: { retryEachOnFailure: boolean } = { retryEachOnFailure: true },
  ) {}

  submit(item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.queue.push({ item, caller: context.active(), resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inFlight += 1;
      void this.write(batch).finally(() => {
        this.inFlight -= 1;
        this.pump();
      });
    }
  }

  private async write(batch: typeof this.queue): Promise<void> {
    try {
      const results = await context.with(batch.length === 1 ? batch[0]!.caller : ROOT_CONTEXT, () => this.writeBatch(batch.map((b) => b.item)));
      batch.forEach((b, i) => {
        b.resolve(results[i]!);
      });
    } catch (err) {
      if (batch.length === 1 || !this.options.retryEachOnFailure) {
        for (const b of batch) b.reject(err);
        return;
      }
      // One bad item (or a deadlock between batches) must not fail the others:
      // retry each on its own so only the culprit sees the error.
      await Promise.all(
        batch.map(async (b) => {
          try {
            b.resolve((await context.with(b.caller, () => this.writeBatch([b.item])))[0]!);
          } catch (error) {
            b.reject(error);
          }
        }),
      );
    }
  }
}
