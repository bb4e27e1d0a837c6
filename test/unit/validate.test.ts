// The checks every value from a caller, a peer host or the config passes
// before it reaches a URI or a path: hostile tables at the module that owns them.
import { describe, expect, it } from 'vitest';
import { authority, isAddress, isHostName, parseHostPort } from '../../src/validate/address.js';
import { isDirectlyInside, isNormalAbsolute } from '../../src/validate/path.js';

describe('parseHostPort', () => {
  it.each([
    ['compute-1.example.org', { host: 'compute-1.example.org', port: null, ipv6: false }, 'compute-1.example.org'],
    ['compute_1', { host: 'compute_1', port: null, ipv6: false }, 'compute_1'],
    ['node.', { host: 'node.', port: null, ipv6: false }, 'node.'],
    ['192.0.2.7', { host: '192.0.2.7', port: null, ipv6: false }, '192.0.2.7'],
    ['192.0.2.7:16509', { host: '192.0.2.7', port: 16509, ipv6: false }, '192.0.2.7:16509'],
    ['::1', { host: '::1', port: null, ipv6: true }, '[::1]'],
    ['fe80::1', { host: 'fe80::1', port: null, ipv6: true }, '[fe80::1]'],
    ['[::1]', { host: '::1', port: null, ipv6: true }, '[::1]'],
    ['[2001:db8::5]:49152', { host: '2001:db8::5', port: 49152, ipv6: true }, '[2001:db8::5]:49152'],
    ['h:1', { host: 'h', port: 1, ipv6: false }, 'h:1'],
    ['h:65535', { host: 'h', port: 65535, ipv6: false }, 'h:65535'],
  ])('%s', (value, parsed, uri) => {
    expect(parseHostPort(value)).toEqual(parsed);
    expect(authority(parsed)).toBe(uri);
  });

  // What a hostile peer or caller tried as a destination or a target_connect_addr.
  it.each([
    '127.0.0.22/system?command=/bin/sh&x=',
    '127.0.0.22/system?command=/bin/sh&x=/system',
    'host/system',
    'host?command=/bin/sh',
    'host#frag',
    'root@host',
    'user:pw@host',
    'host;touch /tmp/x',
    'dst;touch /tmp/pwned',
    '$(touch /tmp/x)',
    '`id`',
    'host touch',
    ' host',
    'host\n',
    'host\0',
    'host%2f',
    'host%00',
    '',
    ':',
    'host:',
    'host:0',
    'host:99999',
    'host:-1',
    'host:22:33',
    '[::1',
    '::1]:80',
    '[not-v6]:80',
    '[127.0.0.1]:80',
    '[::1]:',
    '[::1]x',
    'a..b',
    '.host',
    '-host',
    'host-.',
    `${'a'.repeat(64)}.example`,
    `${'a.'.repeat(127)}ab`,
    'qemu+ssh://evil/system',
    'tcp://evil',
  ])('refuses %j', (value) => {
    expect(parseHostPort(value)).toBeNull();
  });
});

describe('isHostName / isAddress', () => {
  it.each(['a', 'host-1', 'h.example.org', 'h.example.org.', 'ferry-lab-b', 'x_y'])('host name %s', (v) => {
    expect(isHostName(v)).toBe(true);
    expect(isAddress(v)).toBe(true);
  });
  it.each(['10.0.0.1', '::1', '2001:db8::1'])('address %s is not a host name but is an address', (v) => {
    expect(isAddress(v)).toBe(true);
  });
  it.each(['', 'a b', 'a/b', 'a:1', '[::1]', 'a@b', 'a..b', `${'a'.repeat(64)}`, `${'ab.'.repeat(84)}ab`])('refuses %j', (v) => {
    expect(isHostName(v)).toBe(false);
    expect(isAddress(v)).toBe(false);
  });
});

describe('paths', () => {
  const V = '/var/lib/nova/instances/4f3c9a51-1b8e-4d0a-9c77-2a5d3e6f8b10';
  it.each([`${V}/disk`, `${V}/disk.config`, `${V}/disk.eph0`, `${V}/..disk`])('%s is directly inside the instance folder', (p) => {
    expect(isDirectlyInside(V, p)).toBe(true);
  });
  // Disk paths outside the instance folder, as a hostile source would name them.
  it.each([
    V,
    `${V}/`,
    `${V}/.`,
    `${V}/..`,
    `${V}/../other/disk`,
    `${V}/./disk`,
    `${V}//disk`,
    `${V}/sub/disk`,
    `${V}/disk/`,
    `${V}-evil/disk`,
    `${V}/disk\0.qcow2`,
    '/etc/passwd',
    '/var/lib/nova/instances/other/disk',
    'disk',
    `..${V}/disk`,
    '',
  ])('%j is not', (p) => {
    expect(isDirectlyInside(V, p)).toBe(false);
  });
  it.each(['/', '/var/lib/nova/instances/_base/abc', '/a/b.c'])('%s is normal and absolute', (p) => {
    expect(isNormalAbsolute(p)).toBe(true);
  });
  it.each(['', 'a/b', './a', '/a/../b', '/a/./b', '/a//b', '/a/', '/a/..', '/a/.', '/a\0b'])('%j is not', (p) => {
    expect(isNormalAbsolute(p)).toBe(false);
  });
});
