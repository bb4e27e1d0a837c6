// Lab suites (and tests needing lab tools) skip where they cannot run, except
// under CI=true: there a suite that would skip fails instead, naming what is missing, so the suite
// can never shrink silently.
import { existsSync } from 'node:fs';
import { describe, it } from 'vitest';
import { labMissing } from './lab.js';

const ADDON = new URL('../../native/build/Release/virt.node', import.meta.url);

export interface Needs {
  /** The native libvirt addon (native/build/Release/virt.node). */
  addon?: boolean;
  /** Files that must exist (e.g. an emulator binary). */
  files?: string[];
}

function missing(needs: Needs, lab = true): string[] {
  const out = lab ? labMissing() : [];
  if (needs.addon && !existsSync(ADDON)) out.push('the native addon (native/build/Release/virt.node)');
  for (const f of needs.files ?? []) if (!existsSync(f)) out.push(f);
  return out;
}

function failing(what: string, lacks: string[]): () => void {
  return () => {
    throw new Error(`${what} cannot run with CI=true; missing: ${lacks.join(', ')}`);
  };
}

/** describe() for a suite that needs the lab. */
export function describeLab(name: string, fn: () => void, needs: Needs = {}): void {
  const lacks = missing(needs);
  if (!lacks.length) describe(name, fn);
  else if (process.env.CI === 'true') describe(name, () => it('has what the lab needs', failing(name, lacks)));
  else describe.skip(name, fn);
}

/** it() for a single test that needs the lab. */
export function itLab(name: string, fn: () => Promise<void>, timeoutMs?: number): void {
  itNeeding(missing({}), name, fn, timeoutMs);
}

/** it() for a test that needs only some files, not a whole lab. */
export function itWith(needs: Needs, name: string, fn: () => Promise<void>, timeoutMs?: number): void {
  itNeeding(missing(needs, false), name, fn, timeoutMs);
}

function itNeeding(lacks: string[], name: string, fn: () => Promise<void>, timeoutMs?: number): void {
  if (!lacks.length) it(name, fn, timeoutMs);
  else if (process.env.CI === 'true') it(name, failing(name, lacks));
  else it.skip(name, fn);
}
