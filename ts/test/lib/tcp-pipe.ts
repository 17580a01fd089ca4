/**
 * `node tcp-pipe.js HOST PORT`: stdin → HOST:PORT → stdout. QEMU's `guestfwd=…-cmd:` starts one per guest
 * connection, which is how the test server reaches the operator's HTTP server with `restrict=on` (a guestfwd
 * chardev would connect once, at QEMU's start, and serve a single connection).
 */
import { connect } from 'node:net';

const [host, port] = process.argv.slice(2);
const socket = connect({ host, port: Number(port), allowHalfOpen: true });
socket.on('error', () => process.exit(1));
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on('end', () => process.stdout.end());
