/**
 * A progress bar with elapsed time and ETA for long quantization runs. Work is counted in units
 * that may be weighted (e.g. a layer's flops), so the ETA stays honest when steps differ in cost.
 * On a TTY the line is redrawn in place; otherwise one line per update, at most every `minIntervalMs`.
 */
import { InvalidArgumentError } from "@marlin/core";

export interface ProgressSink {
  write(s: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  label?: string;
  /** Default process.stderr. */
  sink?: ProgressSink;
  /** Milliseconds clock (default performance.now); injectable for tests. */
  now?: () => number;
  width?: number;
  /** Non-TTY: the least time between printed lines (default 5000 ms; the last line always prints). */
  minIntervalMs?: number;
}

/** 75 -> "1m15s", 3725 -> "1h02m05s", 9.4 -> "9s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const pad = (v: number) => String(v).padStart(2, "0");
  if (h > 0) return `${h}h${pad(m)}m${pad(r)}s`;
  if (m > 0) return `${m}m${pad(r)}s`;
  return `${r}s`;
}

export class Progress {
  readonly total: number;
  private done = 0;
  private readonly start: number;
  private lastPrint = Number.NEGATIVE_INFINITY;
  private readonly o: Required<Omit<ProgressOptions, "sink">> & { sink: ProgressSink };

  constructor(total: number, opts: ProgressOptions = {}) {
    if (!(total > 0) || !Number.isFinite(total)) throw new InvalidArgumentError(`progress total must be a positive number, got ${total}`);
    this.total = total;
    this.o = {
      label: opts.label ?? "",
      sink: opts.sink ?? process.stderr,
      now: opts.now ?? (() => performance.now()),
      width: opts.width ?? 24,
      minIntervalMs: opts.minIntervalMs ?? 5000,
    };
    this.start = this.o.now();
  }

  get elapsedSeconds(): number {
    return (this.o.now() - this.start) / 1000;
  }

  /** Estimated seconds left from the average rate so far; NaN before any work is done. */
  get etaSeconds(): number {
    if (this.done <= 0) return Number.NaN;
    return (this.elapsedSeconds * (this.total - this.done)) / this.done;
  }

  /** The current line, e.g. `quantize [######------] 12/32 layer 12 q,k,v  elapsed 1m02s  ETA 2m40s`. */
  line(detail = ""): string {
    const frac = Math.min(1, this.done / this.total);
    const filled = Math.round(frac * this.o.width);
    const bar = `[${"#".repeat(filled)}${"-".repeat(this.o.width - filled)}]`;
    const count = Number.isInteger(this.total) && Number.isInteger(this.done) ? `${this.done}/${this.total}` : `${(frac * 100).toFixed(1)}%`;
    const eta = this.done >= this.total ? "done" : `ETA ${formatDuration(this.etaSeconds)}`;
    return [this.o.label, bar, count, detail, ` elapsed ${formatDuration(this.elapsedSeconds)}`, ` ${eta}`].filter((x) => x !== "").join(" ");
  }

  /** Adds `units` of finished work and prints. */
  tick(units = 1, detail = ""): void {
    this.done = Math.min(this.total, this.done + units);
    this.print(detail);
  }

  /** Reprints the line without adding work (e.g. a new step starts). */
  update(detail = ""): void {
    this.print(detail);
  }

  private print(detail: string): void {
    const { sink } = this.o;
    if (sink.isTTY) {
      sink.write(`\r${this.line(detail)}\x1b[K${this.done >= this.total ? "\n" : ""}`);
      return;
    }
    const t = this.o.now();
    if (this.done < this.total && t - this.lastPrint < this.o.minIntervalMs) return;
    this.lastPrint = t;
    sink.write(`${this.line(detail)}\n`);
  }
}
