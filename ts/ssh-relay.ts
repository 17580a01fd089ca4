/**
 * The probe's ProxyCommand when the wait step hands ssh the connection its banner check opened
 * (ts/held-connection.ts): `node ssh-relay.js SOCKET` joins ssh's stdin and stdout to the CLI's unix socket
 * SOCKET, which replays the bytes the check already read (sshd's banner) and pipes on to sshd. It sees only
 * the ssh stream, encrypted after the key exchange. Run as a process of its own, with no imports of ours:
 * it starts on the probe's critical path, so it loads nothing it does not use.
 */
import { connect } from 'node:net';

const path = process.argv[2];
if (!path) {
  process.stderr.write('usage: ssh-relay.js SOCKET\n');
  process.exit(2);
}
const socket = connect(path);
// ssh closing our stdin (it is done, or was killed) ends our side of the socket: the CLI then hangs up on sshd.
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on('error', (e) => {
  process.stderr.write(`emergency ssh-relay: ${e.message}\n`);
  process.exitCode = 1;
});
// The CLI side closed (sshd hung up, or the probe is over): stop reading stdin so nothing keeps us alive, and
// exit once stdout has flushed what the socket delivered (process.exit here could cut that short).
socket.on('close', () => process.stdin.destroy());
process.stdout.on('error', () => socket.destroy());
