/**
 * When ranking's announcements leave (board changes, board moves): the first
 * change at once, further changes within the next `windowMs` together at the
 * window's end, so a burst costs one flush per window and the last flush
 * carries the latest state. One flush at a time: two overlapping flushes
 * could publish an older state after a newer one.
 */
export class AnnouncementWindow {
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly windowMs: number,
    /** Publishes what is pending (and takes it). */
    private readonly flush: () => Promise<void>,
    private readonly hasPending: () => boolean,
  ) {}

  /** Something is pending: flushed now, or at the end of the window open. */
  changed(): void {
    if (this.timer) return; // inside a window: its end flushes this
    this.flushing = this.afterPrevious();
    this.timer = setTimeout(() => this.endWindow(), this.windowMs);
  }

  /** Flushes what is pending and waits for the flush under way. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    if (this.hasPending()) await this.flush();
  }

  private endWindow(): void {
    this.timer = undefined;
    if (!this.hasPending()) return;
    this.flushing = this.afterPrevious();
    this.timer = setTimeout(() => this.endWindow(), this.windowMs);
  }

  private afterPrevious(): Promise<void> {
    return this.flushing.then(() => this.flush());
  }
}
