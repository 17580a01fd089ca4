/**
 * `--json FILE`: a record of the run for tickets and automation — the host's facts, every check and its verdict,
 * the network plan, each step's timing, the restore report, the outcome and the exit code. Its shape is the zod
 * schema below (format 1); the file is written at the end of every run, failed ones too (with the error).
 *
 * Never in it: private key material. Host keys appear as type and fingerprint only, authorized keys as counts and
 * fingerprints; the facts are preflight.sh's, which reads only .pub files. writeRunRecord refuses a record that
 * contains a private key block anyway, as a last line of defence.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { EmergencyError, ExitCode, RefusedError } from './errors.js';
import type { Ui } from './ui.js';

export const RUN_RECORD_FORMAT = 1;

const FindingSchema = z.strictObject({ message: z.string(), fix: z.string(), check: z.string().optional() });

const StepSchema = z.strictObject({
  name: z.string(),
  /** ISO time the step started. */
  startedAt: z.iso.datetime(),
  ms: z.number().nonnegative(),
  ok: z.boolean(),
});

const CheckSchema = z.strictObject({
  name: z.string(),
  title: z.string(),
  status: z.enum(['pass', 'warn', 'refuse', 'ignored', 'pending']),
  findings: z.array(z.strictObject({ message: z.string(), fix: z.string() })),
});

const HostKeySchema = z.strictObject({ path: z.string(), present: z.boolean(), type: z.string().optional(), fingerprint: z.string().optional() });

const MountSchema = z.strictObject({ device: z.string(), mountpoint: z.string(), fstype: z.string(), options: z.string() });
const BlockDeviceSchema = z.strictObject({
  kind: z.enum(['disk', 'part']),
  name: z.string(),
  bytes: z.number().int().nonnegative(),
  model: z.string(),
  label: z.string().optional(),
  fstype: z.string().optional(),
  uuid: z.string().optional(),
});

export const RunRecordSchema = z.strictObject({
  format: z.literal(RUN_RECORD_FORMAT),
  emergency: z.strictObject({ version: z.string() }),
  destination: z.string(),
  mode: z.enum(['rescue', 'dry-run']),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime(),
  durationMs: z.number().nonnegative(),
  /** The options that shape the run (no secrets exist among them: passwords are never options). */
  options: z.strictObject({
    image: z.string().optional(),
    flake: z.string(),
    yes: z.boolean(),
    shell: z.boolean(),
    timeoutSeconds: z.number(),
    dumpNetwork: z.boolean(),
    ignorePreflightErrors: z.array(z.string()),
  }),
  image: z.strictObject({ path: z.string(), name: z.string(), arch: z.string(), tarBytes: z.number().int().nonnegative() }).optional(),
  host: z
    .strictObject({
      /** preflight.sh's key=value facts, as the boundary schema typed them. */
      facts: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
      hostKeys: z.array(HostKeySchema),
      authorizedKeys: z
        .strictObject({ accepted: z.number().int().nonnegative(), fingerprints: z.array(z.string()), leftOut: z.number().int().nonnegative() })
        .optional(),
      root: MountSchema.optional(),
      mounts: z.array(MountSchema),
      blockDevices: z.array(BlockDeviceSchema),
    })
    .optional(),
  checks: z.array(CheckSchema),
  warnings: z.array(z.string()),
  /** The network restore plan (ts/network/plan.ts), as planned. */
  plan: z.record(z.string(), z.unknown()).optional(),
  steps: z.array(StepSchema),
  roundTripsBeforeKexec: z.number().int().nonnegative().optional(),
  /** The rescue system's restore report, when the CLI read one. */
  restoreReport: z.unknown().optional(),
  rescue: z.strictObject({ summary: z.string() }).optional(),
  outcome: z.enum(['rescued', 'dry-run', 'refused', 'declined', 'interrupted', 'failed']),
  exitCode: z.number().int().min(0).max(255),
  error: z
    .strictObject({
      type: z.string(),
      message: z.string(),
      fix: z.string().optional(),
      refusals: z.array(FindingSchema).optional(),
    })
    .optional(),
});

export type RunRecord = z.infer<typeof RunRecordSchema>;
type Host = NonNullable<RunRecord['host']>;

/** `SHA256:…` of an OpenSSH public key line (`TYPE BASE64 [comment]`), as ssh-keygen -l prints it. */
export function publicKeyFingerprint(line: string): { type: string; fingerprint: string } | undefined {
  const match = /(?:^|\s)((?:ssh|ecdsa|sk)-[\w@.-]+)\s+([A-Za-z0-9+/]+={0,3})(?:\s|$)/.exec(line);
  if (!match) return undefined;
  const digest = createHash('sha256').update(Buffer.from(match[2], 'base64')).digest('base64').replace(/=+$/, '');
  return { type: match[1], fingerprint: `SHA256:${digest}` };
}

/** The outcome word for an exit code. */
export function outcomeOf(exitCode: number, dryRun: boolean): RunRecord['outcome'] {
  if (exitCode === ExitCode.Ok) return dryRun ? 'dry-run' : 'rescued';
  if (exitCode === ExitCode.Refused) return 'refused';
  if (exitCode === ExitCode.Declined) return 'declined';
  if (exitCode === ExitCode.Interrupted) return 'interrupted';
  return 'failed';
}

const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----|PRIVATE KEY-----|openssh-key-v1/;

/** What the run options contribute (a subset of Options, so tests need not build one). */
export interface RecordedOptions {
  destination: string;
  image?: string;
  flake: string;
  dryRun: boolean;
  yes: boolean;
  shell: boolean;
  timeout: number;
  dumpNetwork: boolean;
  ignorePreflightErrors?: string[];
}

/** Collects the record while the run goes; `finish` makes the validated record. */
export class RunRecorder {
  private readonly started: number;
  private readonly steps: RunRecord['steps'] = [];
  private readonly warnings: string[] = [];
  private host?: Host;
  private image?: RunRecord['image'];
  private checks: RunRecord['checks'] = [];
  private plan?: RunRecord['plan'];
  private roundTrips?: number;
  private restoreReport?: unknown;
  private rescue?: RunRecord['rescue'];

  constructor(
    private readonly options: RecordedOptions,
    private readonly version: string,
    private readonly now: () => number = Date.now,
  ) {
    this.started = now();
  }

  /** The Ui the run uses: the same output, with each step's name, start and duration recorded. */
  wrap(ui: Ui): Ui {
    const recorder = this;
    return {
      async step<T>(name: string, fn: () => Promise<T>): Promise<T> {
        const start = recorder.now();
        const entry = { name, startedAt: new Date(start).toISOString(), ms: 0, ok: false };
        recorder.steps.push(entry);
        try {
          const result = await ui.step(name, fn);
          entry.ok = true;
          return result;
        } finally {
          entry.ms = recorder.now() - start;
        }
      },
      info: (text) => ui.info(text),
      warn: (text) => {
        recorder.warnings.push(text);
        ui.warn(text);
      },
      out: (text) => ui.out(text),
      progress: (label, total) => ui.progress(label, total),
      confirm: (question) => ui.confirm(question),
      password: (question) => ui.password(question),
      interactive: () => ui.interactive(),
    };
  }

  setImage(image: { path: string; name: string; arch: string; tarBytes: number }): void {
    this.image = { path: image.path, name: image.name, arch: image.arch, tarBytes: image.tarBytes };
  }

  /** The host as preflight saw it: facts, host keys (public: type and fingerprint), old system's storage. */
  setHost(host: {
    facts: Record<string, unknown>;
    hostKeys: { path: string; present: boolean; pub: string }[];
    oldSystem?: { root?: Host['root']; mounts: Host['mounts']; blockDevices: Host['blockDevices'] };
  }): void {
    const facts: Host['facts'] = {};
    for (const [key, value] of Object.entries(host.facts)) {
      if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') facts[key] = value;
    }
    this.host = {
      facts,
      hostKeys: host.hostKeys.map((k) => ({ path: k.path, present: k.present, ...publicKeyFingerprint(k.pub) })),
      ...(host.oldSystem?.root ? { root: host.oldSystem.root } : {}),
      mounts: host.oldSystem?.mounts ?? [],
      blockDevices: host.oldSystem?.blockDevices ?? [],
    };
  }

  /** root's keys in the rescue: how many, their fingerprints, how many were left out (forced commands). */
  setAuthorizedKeys(keys: { accepted: string[]; leftOut: number }): void {
    if (!this.host) return;
    const fingerprints = keys.accepted.map((line) => publicKeyFingerprint(line)?.fingerprint).filter((f): f is string => !!f);
    this.host.authorizedKeys = { accepted: keys.accepted.length, fingerprints, leftOut: keys.leftOut };
  }

  setChecks(results: { name: string; title: string; status: RunRecord['checks'][number]['status']; findings: { message: string; fix: string }[] }[]): void {
    this.checks = results.map((r) => ({
      name: r.name,
      title: r.title,
      status: r.status,
      findings: r.findings.map((f) => ({ message: f.message, fix: f.fix })),
    }));
  }

  setPlan(plan: object): void {
    this.plan = JSON.parse(JSON.stringify(plan)) as Record<string, unknown>;
  }

  setRoundTrips(count: number): void {
    this.roundTrips = count;
  }

  setRestoreReport(report: unknown): void {
    this.restoreReport = report;
  }

  setRescueSummary(summary: string): void {
    this.rescue = { summary };
  }

  /** The finished record, validated against the schema. */
  finish(exitCode: number, error?: unknown): RunRecord {
    const finished = this.now();
    const o = this.options;
    const record: RunRecord = {
      format: RUN_RECORD_FORMAT,
      emergency: { version: this.version },
      destination: o.destination,
      mode: o.dryRun ? 'dry-run' : 'rescue',
      startedAt: new Date(this.started).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      durationMs: finished - this.started,
      options: {
        ...(o.image ? { image: o.image } : {}),
        flake: o.flake,
        yes: o.yes,
        shell: o.shell,
        timeoutSeconds: o.timeout,
        dumpNetwork: o.dumpNetwork,
        ignorePreflightErrors: o.ignorePreflightErrors ?? [],
      },
      ...(this.image ? { image: this.image } : {}),
      ...(this.host ? { host: this.host } : {}),
      checks: this.checks,
      warnings: this.warnings,
      ...(this.plan ? { plan: this.plan } : {}),
      steps: this.steps,
      ...(this.roundTrips !== undefined ? { roundTripsBeforeKexec: this.roundTrips } : {}),
      ...(this.restoreReport !== undefined ? { restoreReport: this.restoreReport } : {}),
      ...(this.rescue ? { rescue: this.rescue } : {}),
      outcome: outcomeOf(exitCode, o.dryRun),
      exitCode,
      ...(error !== undefined ? { error: describeError(error) } : {}),
    };
    return RunRecordSchema.parse(record);
  }
}

function describeError(error: unknown): NonNullable<RunRecord['error']> {
  if (error instanceof RefusedError) {
    return {
      type: error.name,
      message: error.message,
      fix: error.fix,
      refusals: error.reasons.map((r) => ({ message: r.message, fix: r.fix, ...('check' in r && typeof r.check === 'string' ? { check: r.check } : {}) })),
    };
  }
  if (error instanceof EmergencyError) return { type: error.name, message: error.message, fix: error.fix };
  const e = error as Error;
  return { type: e?.name ?? 'Error', message: e?.message ?? String(error) };
}

/** Serialises the record; refuses (throws) if anything in it looks like a private key. */
export function serializeRunRecord(record: RunRecord): string {
  const text = `${JSON.stringify(RunRecordSchema.parse(record), null, 2)}\n`;
  if (PRIVATE_KEY.test(text)) throw new Error('the run record contains private key material; it is not written');
  return text;
}

/** Writes the record to `file` (mode 600: it names hosts, addresses and users). */
export async function writeRunRecord(file: string, record: RunRecord): Promise<void> {
  await writeFile(file, serializeRunRecord(record), { mode: 0o600 });
}

/** writeRunRecord for the exit paths that cannot wait (SIGINT handling ends with process.exit). */
export function writeRunRecordSync(file: string, record: RunRecord): void {
  writeFileSync(file, serializeRunRecord(record), { mode: 0o600 });
}
