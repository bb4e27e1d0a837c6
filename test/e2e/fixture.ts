// Lab guests as Nova would have them: persistent domains on one host, and the
// instance object a conductor sends for them.

import { randomUUID } from 'node:crypto';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { guestXml, prepareInstanceDir, type GuestSpec } from '../lab/guest.js';
import { waitForHeartbeat } from '../lab/heartbeat.js';
import type { LabHost } from '../lab/lab.js';

export interface LabGuest {
  uuid: string;
  name: string;
  /** The instance as the conductor sends it (plain JSON with Nova's field names). */
  instance: Record<string, unknown> & { uuid: string };
}

export async function bootGuest(host: LabHost, spec: Partial<GuestSpec> & { volumeIds?: Record<string, string> } = {}): Promise<LabGuest> {
  const uuid = spec.uuid ?? randomUUID();
  const name = spec.name ?? `e2e-${uuid.slice(0, 8)}`;
  await prepareInstanceDir(host, uuid);
  const xmlFile = join(host.root, `${uuid}.xml`);
  await writeFile(xmlFile, await guestXml({ memoryMiB: 256, ...spec, name, uuid }));
  await host.virsh(['define', xmlFile]);
  await host.virsh(['start', name]);
  await waitForHeartbeat(host, uuid, { after: 1, timeoutMs: 90_000 });
  return {
    uuid,
    name,
    instance: {
      uuid,
      name,
      host: host.hostname,
      vm_state: 'active',
      flavor: { memory_mb: spec.memoryMiB ?? 256, vcpus: 1, root_gb: 1 },
      block_device_mappings: (spec.volumes ?? []).map((v) => ({
        device_name: `/dev/${v.dev}`,
        destination_type: 'volume',
        volume_id: v.serial ?? v.dev,
        connection_info: { driver_volume_type: 'local', serial: v.serial ?? v.dev, data: { device_path: v.path } },
      })),
    },
  };
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
