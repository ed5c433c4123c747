/**
 * Server-sent events on a raw response: `data: {json}` events and the closing `data: [DONE]`.
 * A write that fills the socket buffer waits for 'drain', so a slow client slows only its own
 * stream (the engine pauses it at the AsyncEngine high-water mark); a client that reads nothing
 * for `drainTimeoutMs` is cut off, which aborts its request.
 */
import type { ServerResponse } from "node:http";

export class SseWriter {
  private readonly res: ServerResponse;
  private readonly drainTimeoutMs: number;

  constructor(res: ServerResponse, drainTimeoutMs: number, headers: Record<string, string> = {}) {
    this.res = res;
    this.drainTimeoutMs = drainTimeoutMs;
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", ...headers });
    res.flushHeaders();
  }

  /** The client went away (or was cut off): nothing more can be sent. */
  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  /** Sends one event; false when the client is gone. */
  async send(data: unknown): Promise<boolean> {
    if (this.closed) return false;
    const text = data === "[DONE]" ? "[DONE]" : JSON.stringify(data);
    if (this.res.write(`data: ${text}\n\n`)) return true;
    return this.drained();
  }

  private drained(): Promise<boolean> {
    const res = this.res;
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        res.off("drain", onDrain);
        res.off("close", onClose);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      const timer = Number.isFinite(this.drainTimeoutMs)
        ? setTimeout(() => {
            res.destroy(); // not read for too long: the close aborts the request
            done(false);
          }, this.drainTimeoutMs)
        : undefined;
      res.on("drain", onDrain);
      res.on("close", onClose);
    });
  }

  end(): void {
    if (!this.closed) this.res.end();
  }
}
