/**
 * The NIC checks of preflight, pure (issue 9): will the rescue kernel drive every NIC the restore plan needs
 * (`nic-driver`), with the firmware the host's driver loads (`nic-firmware`)? Facts come from preflight.sh's `nic`
 * and `host-firmware` sections, the image's side from its drivers.manifest, the roles from the network plan.
 */
import type { HostFirmware, NicFact } from '../boundary/preflight.js';
import { modulesFor, type DriverManifest } from '../drivers/manifest.js';
import type { NetworkPlan, PlannedInterface } from '../network/plan.js';
import type { Finding } from './checks.js';

export type { HostFirmware, NicFact } from '../boundary/preflight.js';

/**
 * What preflight.sh gets as MODULE:FILE arguments: the firmware each network driver of the image declares
 * (wireless drivers left out: the rescue restores no Wi-Fi, and their lists are the long ones).
 */
export function firmwareCandidates(manifest: DriverManifest | undefined): string[] {
  if (!manifest) return [];
  const out: string[] = [];
  for (const [module, files] of manifest.wants) {
    const path = manifest.modules.get(module)?.path ?? '';
    if (!path.startsWith('kernel/drivers/net/') || path.startsWith('kernel/drivers/net/wireless/')) continue;
    for (const f of files) out.push(`${module}:${f}`);
  }
  return out.sort();
}

/** `vendor:device` from a PCI or USB modalias (`pci:v00008086d00001572…` → `8086:1572`), else the modalias. */
export function deviceId(modalias: string): string {
  const pci = /^pci:v0000([0-9A-Fa-f]{4})d0000([0-9A-Fa-f]{4})/.exec(modalias);
  if (pci) return `${pci[1]}:${pci[2]}`.toLowerCase();
  const usb = /^usb:v([0-9A-Fa-f]{4})p([0-9A-Fa-f]{4})/.exec(modalias);
  if (usb) return `${usb[1]}:${usb[2]}`.toLowerCase();
  return modalias || 'no modalias';
}

/**
 * The interfaces the plan gives a role: an address, a route or a DHCP client, or being a member or the parent of
 * an interface that has one (a bond's members, a bridge's ports, a VLAN's parent), by old name.
 */
export function interfacesThatMatter(plan: NetworkPlan): Set<string> {
  const matters = new Set<string>();
  for (const i of plan.interfaces) if (i.addresses.length || i.dhcp4 || i.acceptRa) matters.add(i.name);
  for (const r of plan.routes) if (r.dev) matters.add(r.dev);
  for (let changed = true; changed; ) {
    changed = false;
    for (const i of plan.interfaces) {
      if (matters.has(i.name)) continue;
      const role = (i.master && matters.has(i.master)) || plan.interfaces.some((v) => v.vlan?.parent === i.name && matters.has(v.name));
      if (role) {
        matters.add(i.name);
        changed = true;
      }
    }
  }
  return matters;
}

/** What a NIC is used for, in words (`carries 10.0.2.15/24`, `member of bond0`). */
function roleOf(nic: PlannedInterface, plan: NetworkPlan): string {
  if (nic.addresses.length) return `it carries ${nic.addresses.map((a) => a.cidr).join(', ')}`;
  if (nic.master) return `it is a member of ${nic.master}`;
  const vlan = plan.interfaces.find((v) => v.vlan?.parent === nic.name);
  if (vlan) return `${vlan.name} runs on it`;
  return 'the plan routes over it';
}

const MODULE_FIX = (driver: string) =>
  `Add the driver to the NixOS image and rebuild it: emergency.drivers.modulePackages = [ config.boot.kernelPackages.${driver} ]; ` +
  '(any kernel module package that provides it; docs/nix.md).';

/** What judgeNics finds, per check: `nic-driver` and `nic-firmware`, and the NIC table for --dry-run. */
export interface NicVerdict {
  driver: { refusals: Finding[]; warnings: Finding[] };
  firmware: { refusals: Finding[]; warnings: Finding[] };
  table: string[];
}

/** The nic-driver and nic-firmware findings: refusals for NICs that matter, warnings for the rest. */
export function judgeNics(
  nics: readonly NicFact[],
  hostFirmware: readonly HostFirmware[],
  manifest: DriverManifest | undefined,
  plan: NetworkPlan,
): NicVerdict {
  const driver = { refusals: [] as Finding[], warnings: [] as Finding[] };
  const firmware = { refusals: [] as Finding[], warnings: [] as Finding[] };
  const table: string[] = [];
  if (!manifest) {
    driver.warnings.push({
      message: "the image has no drivers.manifest, so whether the rescue kernel drives this host's NICs is not checked",
      fix: 'Rebuild the image with this version of emergency.',
    });
    return { driver, firmware, table };
  }
  const matters = interfacesThatMatter(plan);
  const planned = new Map(plan.interfaces.map((i) => [i.name, i]));
  for (const nic of nics) {
    const role = planned.get(nic.name);
    const important = role !== undefined && matters.has(nic.name);
    const add = (check: typeof driver, f: Finding) =>
      (important ? check.refusals : check.warnings).push(
        important ? f : { ...f, message: `${f.message} (${nic.name} has no role in the restored network, so this is no refusal)` },
      );
    const id = deviceId(nic.modalias);
    const host = nic.bound
      ? `${nic.bound.driver}${nic.bound.module !== nic.bound.driver ? ` (module ${nic.bound.module})` : ''}, ${nic.bound.place === 'builtin' ? 'built in' : 'a loadable module'} on the host`
      : 'no driver bound on the host';
    const why = role ? (important ? `; ${roleOf(role, plan)}` : '') : '';
    if (!nic.modalias) {
      driver.warnings.push({
        message: `NIC ${nic.name} reports no modalias, so its driver cannot be checked`,
        fix: 'Nothing to do unless the rescue system does not come back on it.',
      });
      table.push(`${nic.name}  ${nic.address}  ${host}  unchecked`);
      continue;
    }
    const modules = modulesFor(manifest, nic.modalias);
    if (modules.length === 0) {
      const named =
        nic.bound && manifest.modules.has(nic.bound.module)
          ? ` (the image's ${nic.bound.module} does not list this device: a newer device ID than its driver knows)`
          : '';
      add(driver, {
        message: `NIC ${nic.name} (${id}, MAC ${nic.permAddress ?? nic.address}, ${host}) has no driver in the image's kernel ${manifest.kernel}${named}: no modalias pattern matches ${nic.modalias}${why}`,
        fix: MODULE_FIX(nic.bound?.driver ?? 'DRIVER'),
      });
      // The table says what the NIC is for, not the verdict: that is the nic-driver check's (refused or ignored).
      table.push(`${nic.name}  ${id}  ${host}  image: none${important ? '  (the restored network needs it)' : '  (no role in the restored network)'}`);
      continue;
    }
    let line = `${nic.name}  ${id}  ${host}  image: ${modules.join(',')}`;
    for (const parent of nic.parents.filter((p) => p.place === 'loadable')) {
      if (modulesFor(manifest, parent.modalias).length) continue;
      add(driver, {
        message: `NIC ${nic.name} (${id}) hangs off ${parent.driver} (${deviceId(parent.modalias)}), which the image's kernel ${manifest.kernel} has no driver for${why}`,
        fix: MODULE_FIX(parent.driver),
      });
      line += `  bus ${parent.driver}: none`;
    }
    // Firmware: what the host has of what the drivers declare, and the image does not ship.
    const drivers = new Set([...modules, ...(nic.bound ? [nic.bound.module, nic.bound.driver] : [])]);
    const missing = hostFirmware.filter((f) => drivers.has(f.module) && !manifest.firmware.has(f.file));
    const files = [...new Set(missing.map((f) => f.file))];
    if (files.length) {
      add(firmware, {
        message: `NIC ${nic.name} (${id}, ${host}) loads firmware the image lacks: ${files.join(', ')} (the host has ${missing.map((f) => f.path).join(', ')})${why}`,
        fix: `Add it to the NixOS image and rebuild it: emergency.drivers.firmware = [ ${files.map((f) => JSON.stringify(f)).join(' ')} ]; (docs/nix.md).`,
      });
      line += `  firmware missing: ${files.join(', ')}`;
    }
    table.push(line);
  }
  return { driver, firmware, table };
}
