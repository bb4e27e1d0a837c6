// Lab guests as Nova would have them, spawned by the host's ferryd from the
// instance record (build_and_run_instance) as nova-compute spawns them: the
// record is what the conductor sends for them afterwards.

import { randomUUID } from 'node:crypto';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import type { TestConductor } from '../conductor/conductor.js';
import { waitForHeartbeat } from '../lab/heartbeat.js';
import type { LabHost } from '../lab/lab.js';
import { instanceRecord, type SpawnSpec } from './spawn.js';

export interface LabGuest {
  uuid: string;
  name: string;
  /** The instance as the conductor sends it (plain JSON with Nova's field names). */
  instance: Record<string, unknown> & { uuid: string };
}

/** Spawns a guest through the ferryd of `host` and waits for its first heartbeat. */
export async function bootGuest(conductor: TestConductor, host: LabHost, spec: SpawnSpec & { uuid?: string } = {}): Promise<LabGuest> {
  const uuid = spec.uuid ?? randomUUID();
  const instance = instanceRecord(uuid, host, spec);
  await conductor.compute(host.hostname, 'build_and_run_instance', { instance, ...(spec.image ? { image: { id: spec.image } } : {}) });
  await waitForHeartbeat(host, uuid, { after: 1, timeoutMs: 90_000 });
  return { uuid, name: String(instance.name), instance };
}

/** virsh domstate of the guest on that host, or null when the host has no such domain. */
export async function domainState(host: LabHost, uuid: string): Promise<string | null> {
  const r = await host.virsh(['domstate', uuid], { check: false });
  return r.code === 0 ? r.stdout.trim() : null;
}

export async function instanceDirExists(host: LabHost, uuid: string): Promise<boolean> {
  return access(join(host.hostInstancesDir, uuid)).then(
    () => true,
    () => false,
  );
}

/** The instances the host's pre_live_migration still counts as prepared (its state file, as agents.ts places it). */
export async function preparedOn(host: LabHost): Promise<string[]> {
  const text = await readFile(join(host.root, 'state', 'preparations.json'), 'utf8').catch(() => '{"prepared":[]}');
  return (JSON.parse(text) as { prepared: Array<{ instanceUuid: string }> }).prepared.map((p) => p.instanceUuid);
}

/** Removes whatever a test left of a guest on a host (best effort). */
export async function removeGuest(host: LabHost, uuid: string): Promise<void> {
  await host.virsh(['destroy', uuid], { check: false });
  await host.virsh(['undefine', uuid], { check: false });
}
