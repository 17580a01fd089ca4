/**
 * A tiny HTTP file server for the --image URL tests: GET and HEAD of a fixed map of paths to files, each request
 * logged (method, path, User-Agent, bytes sent) so a test can tell who fetched what: the host's busybox wget
 * or this machine's fetch. No ranges: the sidecar makes them unnecessary (docs/image-layout.md). A path may
 * trickle its file (so a test can interrupt a download half-way) or cut the connection after some bytes.
 */
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createServer, type ServerResponse, type Server } from 'node:http';

/** One request as the server saw it. */
export interface Served {
  method: string;
  path: string;
  userAgent: string;
  status: number;
  bytes: number;
}

/** A file served slowly (`bytesPerSecond`) or cut off: the connection is destroyed after `cutAfter` bytes. */
export interface ServedFile {
  file: string;
  bytesPerSecond?: number;
  cutAfter?: number;
}

/** A running server: its log and how to stop it. */
export interface FileServer {
  url(path: string): string;
  log: Served[];
  close(): Promise<void>;
}

/** Sends `file` as `shape` says, a slice every 100 ms when trickling; stops when the client goes. */
async function sendShaped(res: ServerResponse, shape: ServedFile, size: number, entry: Served): Promise<void> {
  const file = await open(shape.file);
  try {
    const end = Math.min(size, shape.cutAfter ?? size);
    const slice = shape.bytesPerSecond ? Math.max(1, Math.floor(shape.bytesPerSecond / 10)) : 1 << 20;
    const buffer = Buffer.alloc(slice);
    while (entry.bytes < end && !res.destroyed) {
      const { bytesRead } = await file.read(buffer, 0, Math.min(slice, end - entry.bytes), entry.bytes);
      if (!bytesRead) break;
      res.write(buffer.subarray(0, bytesRead));
      entry.bytes += bytesRead;
      if (shape.bytesPerSecond) await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await file.close();
  }
  // Cut off: the client sees the connection end before content-length bytes.
  if (entry.bytes < size) res.destroy();
  else res.end();
}

/** Serves `files` (URL path → file on disk, or a shaped file) on host:port (0: any free one); 404 for anything else. */
export async function startFileServer(host: string, port: number, files: Record<string, string | ServedFile>): Promise<FileServer> {
  const log: Served[] = [];
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const entry: Served = { method: req.method ?? '', path, userAgent: String(req.headers['user-agent'] ?? ''), status: 404, bytes: 0 };
    log.push(entry);
    const served = files[path];
    const shape = typeof served === 'string' ? { file: served } : served;
    if (!shape || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(shape ? 405 : 404).end();
      entry.status = shape ? 405 : 404;
      return;
    }
    stat(shape.file).then(
      (st) => {
        entry.status = 200;
        res.writeHead(200, { 'content-length': st.size, 'content-type': 'application/x-tar' });
        if (req.method === 'HEAD') {
          res.end();
          return;
        }
        if (shape.bytesPerSecond || shape.cutAfter !== undefined) {
          sendShaped(res, shape, st.size, entry).catch(() => res.destroy());
          return;
        }
        const stream = createReadStream(shape.file, { highWaterMark: 1 << 20 });
        stream.on('data', (chunk) => (entry.bytes += chunk.length));
        stream.pipe(res);
      },
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  // Port 0: the one the system chose.
  const listening = (server.address() as { port: number }).port;
  return {
    url: (path) => `http://${host}:${listening}${path}`,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
