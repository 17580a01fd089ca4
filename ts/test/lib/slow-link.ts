/**
 * A slow link in userspace, for the benchmark's shaped run: a TCP relay on 127.0.0.1 in front of a port (the
 * test server's port forward) that delays every chunk by a fixed one-way delay in each direction, in order, and
 * limits each direction's throughput with a token bucket. This kernel has no `netem` qdisc, so the delay cannot
 * come from `tc` (docs/benchmarks.md). The arithmetic (TokenBucket, LinkModel) is pure; startRelay does the I/O.
 */
import { connect, createServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** Bytes leave at `bytesPerSecond`, at most `burstBytes` at once after idling; times in ms. */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    readonly bytesPerSecond: number,
    readonly burstBytes: number,
    now = 0,
  ) {
    this.tokens = burstBytes;
    this.at = now;
  }

  /** When `bytes` offered at `now` (never earlier than the last call) can leave: now, or later behind the bytes before. */
  take(now: number, bytes: number): number {
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.at) * this.bytesPerSecond) / 1000);
    this.at = now;
    this.tokens -= bytes;
    return this.tokens >= 0 ? now : now + (-this.tokens / this.bytesPerSecond) * 1000;
  }
}

/** One direction of the link: the token bucket, then the fixed delay; deliveries never overtake each other. */
export class LinkModel {
  private readonly bucket: TokenBucket;
  private last = -Infinity;

  constructor(
    bytesPerSecond: number,
    readonly delayMs: number,
    burstBytes = 32 * 1024,
    now = 0,
  ) {
    this.bucket = new TokenBucket(bytesPerSecond, burstBytes, now);
  }

  /** When a chunk of `bytes` that arrived at `now` is delivered on the far side. */
  deliverAt(now: number, bytes: number): number {
    this.last = Math.max(this.last, this.bucket.take(now, bytes) + this.delayMs);
    return this.last;
  }
}

/** The link's parameters: one-way delay (RTT / 2) and each direction's rate. */
export interface SlowLinkOptions {
  targetPort: number;
  /** Where the target listens (default 127.0.0.1). */
  targetHost?: string;
  /** Where the relay listens (default 127.0.0.1 on a free port). */
  listen?: { host: string; port: number };
  oneWayDelayMs: number;
  bytesPerSecond: number;
}

/** A running relay: connect to 127.0.0.1:port instead of the target. */
export interface Relay {
  port: number;
  close(): Promise<void>;
}

/**
 * Copies `from` to `to` through `model`. Reading pauses while more than `limit` bytes wait (the bottleneck's
 * queue); `from`'s end reaches `to` after the data before it.
 */
function pipeThrough(from: Socket, to: Socket, model: LinkModel, limit: number): void {
  const queue: { data: Buffer; at: number }[] = [];
  let queued = 0;
  let ended = false;
  let timer: NodeJS.Timeout | undefined;
  const pump = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length && queue[0].at <= now) {
      const { data } = queue.shift()!;
      queued -= data.length;
      if (!to.destroyed) to.write(data);
    }
    if (queued < limit / 2 && from.isPaused()) from.resume();
    if (queue.length) timer = setTimeout(pump, Math.max(1, queue[0].at - now));
    else if (ended && !to.destroyed) to.end();
  };
  from.on('data', (data: Buffer) => {
    queue.push({ data, at: model.deliverAt(performance.now(), data.length) });
    queued += data.length;
    if (queued > limit) from.pause();
    timer ??= setTimeout(pump, Math.max(1, queue[0].at - performance.now()));
  });
  from.on('end', () => {
    ended = true;
    timer ??= setTimeout(pump, 0);
  });
}

/**
 * Listens on 127.0.0.1 (a free port) and relays each connection to 127.0.0.1:targetPort over the slow link.
 * The upstream connection starts one round trip late, standing in for the TCP handshake over the link.
 */
export async function startRelay(options: SlowLinkOptions): Promise<Relay> {
  const sockets = new Set<Socket>();
  const limit = (options.bytesPerSecond * options.oneWayDelayMs) / 1000 + 256 * 1024;
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    const handshake = setTimeout(() => {
      const upstream = connect({ host: options.targetHost ?? '127.0.0.1', port: options.targetPort, allowHalfOpen: true });
      sockets.add(upstream);
      const down = () => {
        upstream.destroy();
        client.destroy();
      };
      upstream.on('error', down);
      client.on('error', down);
      // A reset on either side (the guest rebooting, say) ends both at once, as it would on a wire.
      upstream.on('close', (hadError) => (hadError ? down() : undefined));
      client.on('close', (hadError) => (hadError ? down() : undefined));
      upstream.on('close', () => sockets.delete(upstream));
      pipeThrough(client, upstream, new LinkModel(options.bytesPerSecond, options.oneWayDelayMs, undefined, performance.now()), limit);
      pipeThrough(upstream, client, new LinkModel(options.bytesPerSecond, options.oneWayDelayMs, undefined, performance.now()), limit);
      client.resume();
    }, 2 * options.oneWayDelayMs);
    client.on('close', () => clearTimeout(handshake));
  });
  await new Promise<void>((resolve) => server.listen(options.listen?.port ?? 0, options.listen?.host ?? '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
