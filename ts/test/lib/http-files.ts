/**
 * A tiny HTTP file server for the --image URL tests: GET and HEAD of a fixed map of paths to files, each request
 * logged (method, path, User-Agent, bytes sent) so a test can tell who fetched what: the host's busybox wget
 * or this machine's fetch. No ranges: the sidecar makes them unnecessary (docs/image-layout.md).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';

/** One request as the server saw it. */
export interface Served {
  method: string;
  path: string;
  userAgent: string;
  status: number;
  bytes: number;
}

/** A running server: its log and how to stop it. */
export interface FileServer {
  url(path: string): string;
  log: Served[];
  close(): Promise<void>;
}

/** Serves `files` (URL path → file on disk) on host:port; 404 for anything else. */
export async function startFileServer(host: string, port: number, files: Record<string, string>): Promise<FileServer> {
  const log: Served[] = [];
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const entry: Served = { method: req.method ?? '', path, userAgent: String(req.headers['user-agent'] ?? ''), status: 404, bytes: 0 };
    log.push(entry);
    const file = files[path];
    if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(file ? 405 : 404).end();
      entry.status = file ? 405 : 404;
      return;
    }
    stat(file).then(
      (st) => {
        entry.status = 200;
        res.writeHead(200, { 'content-length': st.size, 'content-type': 'application/x-tar' });
        if (req.method === 'HEAD') {
          res.end();
          return;
        }
        const stream = createReadStream(file, { highWaterMark: 1 << 20 });
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
  return {
    url: (path) => `http://${host}:${port}${path}`,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
