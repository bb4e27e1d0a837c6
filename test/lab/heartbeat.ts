// Reads the guest's serial console log (written by the QEMU on that host).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor } from './exec.js';
import type { LabHost } from './lab.js';

type HostDirs = Pick<LabHost, 'hostInstancesDir'>;

export function consoleLogPath(host: HostDirs, uuid: string): string {
  return join(host.hostInstancesDir, uuid, 'console.log');
}

export async function readConsole(host: HostDirs, uuid: string): Promise<string> {
  try {
    return await readFile(consoleLogPath(host, uuid), 'latin1');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}

/** Heartbeat counters printed so far (`ferry-heartbeat <n> <uptime>`), in order. */
export async function readHeartbeats(host: HostDirs, uuid: string): Promise<number[]> {
  const text = await readConsole(host, uuid);
  const out: number[] = [];
  for (const m of text.matchAll(/^ferry-heartbeat (\d+) [\d.]+\r?$/gm)) out.push(Number(m[1]));
  return out;
}

export async function lastHeartbeat(host: HostDirs, uuid: string): Promise<number> {
  const hb = await readHeartbeats(host, uuid);
  return hb.length ? hb[hb.length - 1]! : 0;
}

/** Resolves with the newest heartbeat counter once one greater than `after` (default 0) is logged. */
export function waitForHeartbeat(
  host: HostDirs,
  uuid: string,
  { after = 0, timeoutMs }: { after?: number; timeoutMs: number },
): Promise<number> {
  return waitFor(
    `a heartbeat after ${after} from ${uuid} in ${consoleLogPath(host, uuid)}`,
    async () => {
      const last = await lastHeartbeat(host, uuid);
      return last > after ? last : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
}

/** Waits for a console line matching `re` (e.g. /^ferry-disk (.*)$/m) and returns the last match. */
export function waitForConsole(
  host: HostDirs,
  uuid: string,
  re: RegExp,
  { timeoutMs }: { timeoutMs: number },
): Promise<RegExpMatchArray> {
  const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
  return waitFor(
    `console line ${re} from ${uuid}`,
    async () => {
      const all = [...(await readConsole(host, uuid)).matchAll(g)];
      return all.length ? all[all.length - 1] : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
}
