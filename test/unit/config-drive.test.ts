// The files of a config drive, from the instance record alone.
import { describe, expect, it } from 'vitest';
import { configDriveFiles } from '../../src/nova/config-drive.js';
import { readGuestDefinition, type HostGuestSettings } from '../../src/nova/guest-definition.js';

const HOST: HostGuestSettings = { instanceDir: '/i/u', virtType: 'qemu', cpuModel: null, vncListen: null, serialConsole: null, tcgRamWorkaround: false };

describe('configDriveFiles', () => {
  it('meta_data.json from the record; empty network and vendor data; no user_data when the record has none', () => {
    expect(configDriveFiles({ uuid: 'u', display_name: 'web', hostname: 'web', metadata: { role: 'db' } }, [])).toEqual({
      'openstack/latest/meta_data.json': '{"uuid":"u","name":"web","hostname":"web","launch_index":0,"availability_zone":null,"project_id":null,"meta":{"role":"db"}}',
      'openstack/latest/network_data.json': '{"links":[],"networks":[],"services":[]}',
      'openstack/latest/vendor_data.json': '{}',
    });
  });

  it('a link per port of network_info (a JSON string too), named tap<port id> as Nova names the device; user_data decoded', () => {
    const port = { id: '5a2f3c1e-7d4b-4e8a-9c6f-0b1d2e3f4a5b', address: 'fa:16:3e:4e:00:01', type: 'bridge', details: { bridge_name: 'brq-1' }, network: { meta: { mtu: 1450 } } };
    const raw = { uuid: 'u', name: 'instance-1', flavor: { memory_mb: 64, vcpus: 1 }, info_cache: { network_info: JSON.stringify([port]) }, user_data: Buffer.from('#!/bin/sh\necho hi\n').toString('base64') };
    const { interfaces } = readGuestDefinition(raw, HOST);
    const files = configDriveFiles(raw, interfaces);
    expect(JSON.parse(files['openstack/latest/network_data.json'] as string)).toEqual({
      links: [{ id: 'tap5a2f3c1e-7d', vif_id: port.id, type: 'bridge', ethernet_mac_address: 'fa:16:3e:4e:00:01', mtu: 1450 }],
      networks: [],
      services: [],
    });
    expect(JSON.parse(files['openstack/latest/meta_data.json'] as string)).toMatchObject({ name: 'instance-1' });
    expect(Buffer.from(files['openstack/latest/user_data'] as Uint8Array).toString()).toBe('#!/bin/sh\necho hi\n');
  });

  it('the same record gives the same files', () => {
    const record = { uuid: 'u', hostname: 'h', metadata: { a: 'b' }, launch_index: 2 };
    expect(configDriveFiles(record, [])).toEqual(configDriveFiles({ ...record }, []));
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['user_data not base64', { user_data: 'not base64!' }, /instance\.user_data: expected base64/],
    ['metadata not strings', { metadata: { n: 1 } }, /instance\.metadata: expected an object of strings/],
    ['a negative launch index', { launch_index: -1 }, /instance\.launch_index: expected an integer >= 0/],
  ])('refuses %s, naming the field', (_name, over, message) => {
    expect(() => configDriveFiles({ uuid: 'u', ...over }, [])).toThrow(message);
  });
});
