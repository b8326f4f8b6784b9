// A deduplicating work queue of keys, as client-go's: a key waiting is queued once however often it is added, a key
// being processed is never processed twice at once (an add meanwhile queues it again for after), and `addAfter`
// schedules a key for later (the earliest schedule wins).

export class WorkQueue {
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #active = new Set<string>();
  /** Keys added while active: queued again when done. */
  readonly #dirty = new Set<string>();
  readonly #timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  #waiters: (() => void)[] = [];
  #closed = false;

  /** Queues `key` now (once, however often it is added). */
  add(key: string): void {
    if (this.#closed) return;
    const timer = this.#timers.get(key);
    if (timer !== undefined) {
      clearTimeout(timer.timer);
      this.#timers.delete(key);
    }
    if (this.#active.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#queue.push(key);
    this.#waiters.shift()?.();
  }

  /** Queues `key` after `ms`, unless it is already due sooner. */
  addAfter(key: string, ms: number): void {
    if (this.#closed) return;
    if (ms <= 0) return this.add(key);
    const at = Date.now() + ms;
    const existing = this.#timers.get(key);
    if (existing !== undefined && existing.at <= at) return;
    if (existing !== undefined) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.#timers.set(key, { at, timer });
  }

  /** Drops any later schedule of `key` (it was deleted). */
  forget(key: string): void {
    const timer = this.#timers.get(key);
    if (timer !== undefined) clearTimeout(timer.timer);
    this.#timers.delete(key);
  }

  /** The next key to process, marked active; undefined once the queue is closed. */
  async next(): Promise<string | undefined> {
    for (;;) {
      if (this.#closed) return undefined;
      const key = this.#queue.shift();
      if (key !== undefined) {
        this.#queued.delete(key);
        this.#active.add(key);
        return key;
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** Marks `key` processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.#active.delete(key);
    if (this.#dirty.delete(key)) this.add(key);
  }

  /** Keys waiting now (for metrics and tests). */
  get length(): number {
    return this.#queue.length;
  }

  /** Stops handing out keys and drops every schedule. */
  close(): void {
    this.#closed = true;
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
