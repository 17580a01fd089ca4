/** The command line: `emergency [options] DESTINATION`, parsed into Options with yargs. */
import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { EmergencyError, ExitCode } from './errors.js';
import { DEFAULT_FALLBACK, parseFallbackDuration } from './fallback.js';
import type { Options } from './operation.js';
import { ignoreProblems } from './preflight/checks.js';

/** This package's version (package.json), for --version and the run record. */
export const VERSION: string = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

/** The exit codes, as --help and the README's table state them (a unit test keeps both in step with ExitCode). */
export const EXIT_CODE_HELP: [ExitCode, string][] = [
  [ExitCode.Ok, 'rescued (or dry run done)'],
  [ExitCode.Internal, 'internal error: run with --debug and report it'],
  [ExitCode.Usage, 'bad command line or image; nothing was changed on the host'],
  [ExitCode.Connection, 'ssh could not connect or log in'],
  [ExitCode.Refused, 'refused by preflight or privileges; nothing was changed'],
  [ExitCode.StageFailed, 'the download, staging or loading failed; anything staged was removed, the old system runs on'],
  [ExitCode.Declined, 'you declined the confirmation'],
  [ExitCode.NotBack, 'after the kexec, no rescue answered in time, or the installed system came back'],
  [ExitCode.HostKeyChanged, 'the host answered with a different host key'],
  [ExitCode.Interrupted, 'interrupted (Ctrl-C, SIGTERM, SIGHUP); before kexec, what was staged or downloaded is removed'],
];

const PURPOSE =
  'Rescue a broken Linux server over SSH: kexec it into an in-memory rescue system that comes back at the same ' +
  'addresses, with the same SSH host key, accepting the same keys. DESTINATION is [user@]host or a Host alias from ' +
  '~/.ssh/config (ProxyJump, IdentityFile, the agent and known_hosts work as with ssh).';

const EXAMPLES: [string, string][] = [
  ['$0 root@203.0.113.10', 'as root; Nix builds the image for the host'],
  ['$0 admin@server.example.com', 'as a user with sudo (password asked once) or doas'],
  ['$0 db1', 'a Host alias in ~/.ssh/config, e.g. with ProxyJump'],
  ['$0 --image image.tar root@server', 'an image built elsewhere (nix build .#image)'],
  ['$0 --image URL#sha256=HEX root@server', 'the host downloads the image itself (hash pinned)'],
  ['$0 --dry-run root@server', 'connect, check and plan; change nothing'],
  ['$0 --yes --shell root@server', 'no question; a root shell once the rescue is up'],
  ['$0 --dry-run --json run.json db1', 'a record of the checks and the plan for a ticket'],
  ['$0 completion >> ~/.bashrc', 'tab completion (zsh when $SHELL is zsh)'],
];

const EPILOGUE =
  "Where the image comes from: --image PATH, --image URL (pinned with #sha256=HEX or --image-sha256; the host fetches it when it can reach the URL, else this machine streams it), or else `nix build FLAKE#packages.SYSTEM.image` for the host's " +
  'architecture (SYSTEM x86_64-linux or aarch64-linux; FLAKE from --flake or EMERGENCY_FLAKE, default the current ' +
  'directory). Without Nix, build the image elsewhere and pass it with --image.\n\n' +
  'Exit codes:\n' +
  EXIT_CODE_HELP.map(([code, meaning]) => `  ${String(code).padStart(3)}  ${meaning}`).join('\n') +
  '\n\nNothing on the host changes before the kexec; docs: README.md and docs/ in the emergency repository.';

/** The yargs parser of the command line (also used for --help, --version and `completion`). */
export function commandLine(argv: string[], env: NodeJS.ProcessEnv = process.env) {
  return (
    yargs(argv)
      .scriptName('emergency')
      .usage(`$0 [options] DESTINATION

${PURPOSE}`)
      // Wrapped by yargs at the terminal's width (at most 100), never by hand in the text above.
      .wrap(Math.min(100, process.stdout.columns || 100))
      .option('image', {
        type: 'string',
        describe: "image tarball, or its http(s)/file URL (pinned: #sha256=HEX or --image-sha256); default: nix build .#image for the host's architecture",
      })
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
      .option('dump-network', {
        type: 'boolean',
        default: env.EMERGENCY_DUMP_NETWORK === '1',
        describe: 'write emergency_ips, emergency_routes, emergency_nameservers and the raw capture here (also EMERGENCY_DUMP_NETWORK=1)',
      })
      .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'do not ask before kexec' })
      .option('timeout', { type: 'number', default: 600, describe: 'seconds to wait for the rescue system after kexec' })
      .option('fallback-reboot', {
        type: 'string',
        default: DEFAULT_FALLBACK,
        describe: 'unless confirmed within this time (90s, 10m, 1h), the rescue system reboots into the installed system; off disables',
      })
      .option('connect-timeout', { type: 'number', default: 15, describe: 'seconds for the first ssh connection' })
      .option('shell', { type: 'boolean', default: false, describe: 'open a root shell on the rescue system when it is up' })
      .option('json', { type: 'string', describe: 'write a record of the run to FILE (JSON: facts, checks, plan, step timings, outcome), also when it fails' })
      .option('debug', { type: 'boolean', default: false, describe: 'print stack traces and remote output' })
      .option('ignore-preflight-errors', {
        type: 'string',
        describe: 'preflight checks (by name, comma-separated, or all) whose refusals become warnings; --dry-run lists them',
        coerce: (v: string | string[] | undefined) =>
          v === undefined
            ? []
            : ([] as string[])
                .concat(v)
                .flatMap((s) => s.split(','))
                .map((s) => s.trim())
                .filter(Boolean),
      })
      .option('flake', { type: 'string', default: env.EMERGENCY_FLAKE ?? '.', describe: 'flake that builds the image when --image is not given' })
      .demandCommand(1, 1, 'DESTINATION is missing: emergency [options] [user@]host', 'one DESTINATION only')
      .strictOptions()
      .check((a) => {
        // `!(x > 0)` and not `x <= 0`: a word (`--timeout soon`) parses to NaN, which is neither.
        if (!(a.timeout > 0) || !(a['connect-timeout'] > 0)) throw new Error('--timeout and --connect-timeout must be positive numbers of seconds');
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
      .group(['image', 'image-sha256', 'flake'], 'Image:')
      .group(['port', 'identity', 'ssh-option', 'ssh-config', 'connect-timeout'], 'SSH:')
      .group(['dry-run', 'yes', 'timeout', 'fallback-reboot', 'shell', 'ignore-preflight-errors'], 'Rescue:')
      .group(['json', 'dump-network', 'debug'], 'Output:')
      .example(EXAMPLES)
      .epilogue(EPILOGUE)
      .completion('completion', 'print a bash or zsh completion script (emergency completion >> ~/.bashrc)')
      .help()
      .version(VERSION)
  );
}

/** Parses argv into Options; throws on bad usage. */
export async function parseArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<Options> {
  const args = await commandLine(argv, env).parse();
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
    json: args.json,
    flake: args.flake,
    ignorePreflightErrors: args['ignore-preflight-errors'] ?? [],
  };
}
