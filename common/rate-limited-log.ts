/**
 * A log line at most once per interval: a fault a client can trigger at will must not let it
 * flood the log. Lines dropped in between are counted and the next one says how many.
 */
export class RateLimitedLog {
  private last = -Infinity;
  private dropped = 0;

  constructor(
    private readonly write: (line: string) => void,
    private readonly intervalMs = 10_000,
    private readonly now = () => Date.now(),
  ) {}

  log(line: string): void {
    const t = this.now();
    if (t - this.last < this.intervalMs) {
      this.dropped++;
      return;
    }
    this.last = t;
    const more = this.dropped ? ` (${this.dropped} more since the last line like this)` : '';
    this.dropped = 0;
    this.write(`${line}${more}`);
  }
}
