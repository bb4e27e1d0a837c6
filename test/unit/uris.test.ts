import { describe, expect, it } from 'vitest';
import { RpcError } from '../../src/rpc/errors.js';
import * as errors from '../../src/nova/errors.js';
import { connectionUri, dataUri, disksUri, uriHost, validateHostname } from '../../src/source/uris.js';

describe('connectionUri (Nova test_driver)', () => {
  it.each(['127.0.0.1', '127.0.0.1:4444', '[::1]:4444', '[0:0:0:0:0:0:0:1]:4444', 'destination'])('qemu+tcp for %s', (dest) => {
    expect(connectionUri(dest, null, 'dest')).toBe(`qemu+tcp://${dest}/system`);
  });
  it('brackets a bare IPv6 address', () => {
    expect(connectionUri('::1', null, 'dest')).toBe('qemu+tcp://[::1]/system');
    expect(connectionUri('fe80::1', null, 'dest')).toBe('qemu+tcp://[fe80::1]/system');
  });
  it('uses the configured scheme, tcp when null or empty', () => {
    expect(connectionUri('destination', 'ssh', 'dest')).toBe('qemu+ssh://destination/system');
    expect(connectionUri('destination', 'tls', 'dest')).toBe('qemu+tls://destination/system');
    expect(connectionUri('destination', null, 'dest')).toBe('qemu+tcp://destination/system');
    expect(connectionUri('destination', '', 'dest')).toBe('qemu+tcp://destination/system');
  });
});

describe('dataUri', () => {
  it('tcp://dest', () => {
    expect(dataUri('destination', 'addr')).toBe('tcp://destination');
    expect(dataUri('127.0.0.2', 'addr')).toBe('tcp://127.0.0.2');
    expect(dataUri('10.0.0.1:49152', 'addr')).toBe('tcp://10.0.0.1:49152');
  });
  it('brackets IPv6, leaves a bracketed one alone', () => {
    expect(dataUri('::1', 'addr')).toBe('tcp://[::1]');
    expect(dataUri('[::1]', 'addr')).toBe('tcp://[::1]');
  });
});

describe('disksUri', () => {
  it('the memory stream\'s host without its port, IPv6 bracketed', () => {
    expect(disksUri('10.0.0.1:49152', 'addr')).toBe('tcp://10.0.0.1');
    expect(disksUri('migration-b', 'addr')).toBe('tcp://migration-b');
    expect(disksUri('fd00::2', 'addr')).toBe('tcp://[fd00::2]');
    expect(disksUri('[fd00::2]:49152', 'addr')).toBe('tcp://[fd00::2]');
  });
  it('refuses what is not an address, naming it', () => {
    expect(() => disksUri('h/x?y', 'target_connect_addr')).toThrow(/target_connect_addr: 'h\/x\?y' is not an IP address/);
  });
});

describe('uriHost: what a peer may put into a migration URI', () => {
  it.each(['compute-1.example.org', 'compute_1', 'a', 'node.', '192.0.2.7', '192.0.2.7:16509', '::1', '[2001:db8::5]:49152', 'ferry-lab-b'])('accepts %s', (h) => {
    expect(() => uriHost(h, 'target_connect_addr')).not.toThrow();
  });
  it.each([
    '127.0.0.22/system?command=/bin/sh&x=',
    'host/system',
    'host?command=/bin/sh',
    'root@host',
    'host;touch /tmp/x',
    'host touch',
    '',
    'host:',
    'host:99999',
    'host:22:33',
    '[::1',
    '[not-v6]:80',
    '::1]:80',
    'a..b',
    '-host',
    'host%2f',
    `${'a'.repeat(64)}.example`,
    'host\n',
  ])('refuses %j, naming the value', (h) => {
    expect(() => uriHost(h, 'target_connect_addr')).toThrow(errors.InvalidInput);
    expect(() => uriHost(h, 'target_connect_addr')).toThrow(/^Invalid input received: target_connect_addr: '/);
  });
});

describe('validateHostname', () => {
  it.each(['destination', 'host-1.example.org', '127.0.0.1', '::1', 'a_b:4444'])('accepts %s', (h) => {
    expect(() => validateHostname(h)).not.toThrow();
  });
  it.each(['foo/?com=/bin/sh', '[::1]:4444', 'a b', '', 'x;rm -rf', 'host%00'])('rejects %j with InvalidHostname', (h) => {
    expect(() => validateHostname(h)).toThrow(errors.InvalidHostname);
  });
  it('carries the oslo identity', () => {
    try {
      validateHostname('foo/?com=/bin/sh');
      expect.unreachable();
    } catch (e) {
      const err = e as errors.InvalidHostname;
      expect(err).toBeInstanceOf(RpcError);
      expect(err.name).toBe('InvalidHostname');
      expect(err.module).toBe('nova.exception');
      expect(err.kwargs).toEqual({ hostname: 'foo/?com=/bin/sh' });
      expect(err.message).toBe("dest: Invalid characters in hostname 'foo/?com=/bin/sh'");
    }
  });
});

describe('Nova exception classes', () => {
  const cases: Array<[RpcError, string, Record<string, unknown>]> = [
    [new errors.InstanceNotFound('u1'), 'InstanceNotFound', { instance_id: 'u1' }],
    [new errors.MigrationNotFound(7), 'MigrationNotFound', { migration_id: 7 }],
    [new errors.InvalidMigrationState(7, 'u1', 'completed', 'abort live migration'), 'InvalidMigrationState', {
      migration_id: 7, instance_uuid: 'u1', state: 'completed', method: 'abort live migration',
    }],
    [new errors.MigrationPreCheckError('boom'), 'MigrationPreCheckError', { reason: 'boom' }],
    [new errors.InvalidSharedStorage('h', 'r'), 'InvalidSharedStorage', { path: 'h', reason: 'r' }],
    [new errors.InvalidLocalStorage('h', 'r'), 'InvalidLocalStorage', { path: 'h', reason: 'r' }],
    [new errors.DestinationDiskExists('/p'), 'DestinationDiskExists', { path: '/p' }],
    [new errors.LiveMigrationNotSubmitted('m', 'u'), 'LiveMigrationNotSubmitted', { migration_uuid: 'm', instance_uuid: 'u' }],
    [new errors.MigrationError('r'), 'MigrationError', { reason: 'r' }],
    [new errors.Forbidden('compute:x'), 'PolicyNotAuthorized', { action: 'compute:x' }],
    [new errors.InvalidInput('r'), 'InvalidInput', { reason: 'r' }],
    [new errors.NoActiveMigrationForInstance('u'), 'NoActiveMigrationForInstance', { instance_id: 'u' }],
  ];
  it.each(cases)('%#: class, module and kwargs', (err, name, kwargs) => {
    expect(err).toBeInstanceOf(RpcError);
    expect(err.name).toBe(name);
    expect(err.module).toBe('nova.exception');
    expect(err.kwargs).toEqual(kwargs);
    expect(err.message.length).toBeGreaterThan(0);
  });
  it('messages read like Nova', () => {
    expect(new errors.InvalidMigrationState(7, 'u1', 'completed', 'abort live migration').message).toBe(
      'Migration 7 state of instance u1 is completed. Cannot abort live migration while the migration is in this state.',
    );
    expect(new errors.NoActiveMigrationForInstance('u').message).toBe('Active live migration for instance u not found');
    expect(new errors.MigrationPreCheckError('x').message).toBe('Migration pre-check error: x');
  });
});
