/**
 * The wait step's banner check keeps the connection on which it saw sshd's banner, and hands it to the probe's
 * ssh instead of hanging up: on the rescue, sshd forks and re-executes a child per connection before its banner
 * (about half a second under QEMU TCG), so a probe on a second connection pays that again. ssh reaches the held
 * connection through a ProxyCommand (ts/ssh-relay.ts) that connects to a unix socket this side serves; the bytes
 * already read are replayed first, then both directions are piped. ssh still checks the host key against
 * known_hosts for the destination's HostName and port, as it does without a proxy.
 */
import { createServer, type Server, type Socket } from 'node:net';

/** A connection to sshd on which its banner was read, paused until served to one relay. */
export class HeldConnection {
  /** Whether a relay connected and the connection went to it (a probe that failed before that never used it). */
  handedOver = false;
  private closed = false;
  private server?: Server;
  private relay?: Socket;

  /** `received`: every byte read from `socket` so far, replayed to the relay before anything else. */
  constructor(
    private readonly socket: Socket,
    private readonly received: Buffer,
  ) {
    socket.pause();
    // An error is followed by 'close'; without a listener it would be thrown.
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      // sshd hung up (or reset): ssh must see the end of its stream, not wait on a relay that stays open.
      if (this.relay && !this.relay.writableEnded) this.relay.end();
    });
  }

  /** Whether sshd still holds its end: a connection it closed is not worth a probe. */
  get alive(): boolean {
    return !this.closed && !this.socket.destroyed;
  }

  /**
   * Listens on the unix socket `path` (in a directory only this user can enter) for one relay, and gives it the
   * connection. Resolves once listening; rejects when it cannot listen (the path too long for a unix socket, say).
   */
  serve(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = createServer((relay) => {
        // One relay only: a second connection gets nothing, and nobody else can connect once this one is in.
        server.close();
        if (this.handedOver || !this.alive) {
          relay.destroy();
          return;
        }
        this.handedOver = true;
        this.relay = relay;
        relay.on('error', () => this.socket.destroy());
        relay.on('close', () => {
          if (!this.socket.writableEnded) this.socket.end();
        });
        // The relay's pipes cut ssh's writes into pieces of their own: don't let Nagle hold one back for an ACK.
        this.socket.setNoDelay(true);
        relay.write(this.received);
        this.socket.pipe(relay);
        relay.pipe(this.socket);
      });
      this.server = server;
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  }

  /** Closes everything: the listener (which removes its socket file), the relay's connection and sshd's. */
  close(): void {
    this.server?.close();
    this.relay?.destroy();
    this.socket.destroy();
  }
}
