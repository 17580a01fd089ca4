/** The command line: `emergency [options] DESTINATION`, parsed into Options with yargs. */
import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { EmergencyError, ExitCode } from './errors.js';
import { DEFAULT_FALLBACK, parseFallbackDuration } from './fallback.js';
import type { Options } from './operation.js';
import { ignoreProblems } from './preflight/checks.js';

/** Parses argv into Options; throws on bad usage. */
export async function parseArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<Options> {
  const args = await yargs(argv)
    .scriptName('emergency')
    .usage(
      '$0 [options] DESTINATION\n\n' +
        'Kexec a broken Linux server into an in-memory rescue system that comes back at the same addresses,\n' +
        'with the same SSH host key, accepting the same keys. DESTINATION is [user@]host or an ssh config alias.',
    )
    .option('image', { type: 'string', describe: 'image tarball, or its http(s)/file URL (pinned: #sha256=HEX or --image-sha256); default: nix build .#image for the host\'s architecture' })
    .option('image-sha256', { type: 'string', describe: 'the sha256 the image must have (required for a URL)' })
    .option('port', { alias: 'p', type: 'number', describe: 'ssh port' })
    .option('identity', { alias: 'i', type: 'string', describe: 'ssh identity file' })
    .option('ssh-option', {
      alias: 'o',
      type: 'string',
      describe: 'ssh -o option (repeatable)',
      // Not `array: true`: that would swallow DESTINATION after `-o X`; repeated options still collect.
      coerce: (v: string | string[] | undefined) => (v === undefined ? [] : ([] as string[]).concat(v)),
    })
    .option('ssh-config', { alias: 'F', type: 'string', describe: 'ssh config file' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'connect, check, capture and plan; change nothing' })
    .option('dump-network', { type: 'boolean', default: env.EMERGENCY_DUMP_NETWORK === '1', describe: 'write emergency_ips, emergency_routes, emergency_nameservers and the raw capture here (also EMERGENCY_DUMP_NETWORK=1)' })
    .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'do not ask before kexec' })
    .option('timeout', { type: 'number', default: 600, describe: 'seconds to wait for the rescue system after kexec' })
    .option('fallback-reboot', {
      type: 'string',
      default: DEFAULT_FALLBACK,
      describe: 'unless confirmed within this time (90s, 10m, 1h), the rescue system reboots into the installed system; off disables',
    })
    .option('connect-timeout', { type: 'number', default: 15, describe: 'seconds for the first ssh connection' })
    .option('shell', { type: 'boolean', default: false, describe: 'open a root shell on the rescue system when it is up' })
    .option('debug', { type: 'boolean', default: false, describe: 'print stack traces and remote output' })
    .option('ignore-preflight-errors', {
      type: 'string',
      describe: 'preflight checks (by name, comma-separated, or all) whose refusals become warnings; --dry-run lists them',
      coerce: (v: string | string[] | undefined) => (v === undefined ? [] : ([] as string[]).concat(v).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean)),
    })
    .option('flake', { type: 'string', default: env.EMERGENCY_FLAKE ?? '.', describe: 'flake that builds the image when --image is not given' })
    .demandCommand(1, 1, 'DESTINATION is missing: emergency [options] [user@]host', 'one DESTINATION only')
    .strictOptions()
    .check((a) => {
      if (a.timeout <= 0 || a['connect-timeout'] <= 0) throw new Error('--timeout and --connect-timeout must be positive numbers of seconds');
      const ignoring = ignoreProblems(a['ignore-preflight-errors'] ?? []);
      if (ignoring.length) throw new Error(ignoring.join('; '));
      parseFallbackDuration(a['fallback-reboot']);
      if (a.port !== undefined && !(Number.isInteger(a.port) && a.port > 0 && a.port < 65536)) throw new Error('--port must be a port number (1-65535)');
      return true;
    })
    .exitProcess(false)
    .fail((message, error) => {
      throw new EmergencyError(error?.message ?? message, 'See emergency --help.', ExitCode.Usage);
    })
    .help()
    .version(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version)
    .parse();
  return {
    destination: String(args._[0]),
    image: args.image,
    imageSha256: args['image-sha256'],
    port: args.port,
    identity: args.identity,
    sshOptions: args['ssh-option'] ?? [],
    sshConfig: args['ssh-config'],
    dryRun: args['dry-run'],
    dumpNetwork: args['dump-network'],
    yes: args.yes,
    timeout: args.timeout,
    fallbackReboot: parseFallbackDuration(args['fallback-reboot']),
    connectTimeout: args['connect-timeout'],
    shell: args.shell,
    debug: args.debug,
    flake: args.flake,
    ignorePreflightErrors: args['ignore-preflight-errors'] ?? [],
  };
}
