// Facts about a guest and a host read from libvirt XML: what a destination
// must support to run the guest, and the guest's memory size.

import { childElements, findAll, firstChild, parseXml, textContent } from './xml.js';

export interface GuestFacts {
  /** libvirt domain type: kvm or qemu (TCG). */
  virtType: string;
  arch: string;
  memoryMb: number;
}

const MIB_PER_UNIT: Record<string, number> = {
  b: 1 / 1024 ** 2, bytes: 1 / 1024 ** 2, k: 1 / 1024, kib: 1 / 1024, kb: 1000 / 1024 ** 2,
  m: 1, mib: 1, mb: 1e6 / 1024 ** 2, g: 1024, gib: 1024, gb: 1e9 / 1024 ** 2,
};

export function guestFacts(domainXml: string): GuestFacts {
  const domain = parseXml(domainXml).documentElement;
  const osType = findAll(domain, 'os/type')[0];
  const memory = firstChild(domain, 'memory');
  const unit = (memory?.getAttribute('unit') ?? 'KiB').toLowerCase();
  return {
    virtType: domain.getAttribute('type') ?? 'kvm',
    arch: osType?.getAttribute('arch') ?? 'x86_64',
    memoryMb: memory ? Number(textContent(memory).trim()) * (MIB_PER_UNIT[unit] ?? 1 / 1024) : 0,
  };
}

/** The host's own CPU architecture, from its capabilities. */
export function hostArch(capabilitiesXml: string): string | null {
  const arch = findAll(parseXml(capabilitiesXml).documentElement, 'host/cpu/arch')[0];
  return arch ? textContent(arch).trim() : null;
}

/** "<arch>/<domain type>" for every guest the host's capabilities offer. */
export function supportedGuests(capabilitiesXml: string): string[] {
  const caps = parseXml(capabilitiesXml).documentElement;
  const out = new Set<string>();
  for (const guest of childElements(caps, 'guest')) {
    for (const arch of childElements(guest, 'arch')) {
      const name = arch.getAttribute('name');
      for (const dom of childElements(arch, 'domain')) out.add(`${name}/${dom.getAttribute('type')}`);
    }
  }
  return [...out];
}

/** The guest's CPU: a named model only for mode='custom' (host-model/passthrough name none). */
export function guestCpu(domainXml: string): { mode: string; model: string | null } {
  const cpu = firstChild(parseXml(domainXml).documentElement, 'cpu');
  if (!cpu) return { mode: 'none', model: null };
  const mode = cpu.getAttribute('mode') ?? 'custom';
  const model = firstChild(cpu, 'model');
  return { mode, model: mode === 'custom' && model ? textContent(model).trim() || null : null };
}

/** CPU models a host can run for custom-mode guests, from its domain capabilities. */
export function usableCpuModels(domainCapabilitiesXml: string): string[] {
  const caps = parseXml(domainCapabilitiesXml).documentElement;
  const custom = findAll(caps, 'cpu/mode').find((m) => m.getAttribute('name') === 'custom' && m.getAttribute('supported') === 'yes');
  if (!custom) return [];
  return childElements(custom, 'model')
    .filter((m) => m.getAttribute('usable') !== 'no')
    .map((m) => textContent(m).trim());
}
