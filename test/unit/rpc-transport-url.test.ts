import { describe, expect, it } from 'vitest';
import { parseTransportUrl, redactUrl } from '../../src/broker/transport-url.js';

describe('parseTransportUrl', () => {
  it('parses a single host with default vhost', () => {
    expect(parseTransportUrl('rabbit://guest:guest@127.0.0.1:5672/')).toEqual({
      hosts: [{ hostname: '127.0.0.1', port: 5672, username: 'guest', password: 'guest' }],
      vhost: '/',
      ssl: false,
      query: {},
    });
  });
  it('parses several hosts, a vhost and ssl=1', () => {
    const u = parseTransportUrl('rabbit://u1:p%40ss@h1:5671,u2:p2@h2/nova?ssl=1&foo=bar');
    expect(u.hosts).toEqual([
      { hostname: 'h1', port: 5671, username: 'u1', password: 'p@ss' },
      { hostname: 'h2', port: 5671, username: 'u2', password: 'p2' },
    ]);
    expect(u.vhost).toBe('nova');
    expect(u.ssl).toBe(true);
    expect(u.query).toEqual({ foo: 'bar' });
  });
  it('inherits credentials and handles amqps and IPv6', () => {
    const u = parseTransportUrl('amqps://a:b@h1,[::1]:5999');
    expect(u.ssl).toBe(true);
    expect(u.hosts[1]).toEqual({ hostname: '::1', port: 5999, username: 'a', password: 'b' });
    expect(u.hosts[0]!.port).toBe(5671);
  });
  it('refuses other schemes and bad ports', () => {
    expect(() => parseTransportUrl('kafka://h:1/')).toThrow(/scheme/);
    expect(() => parseTransportUrl('rabbit://h:99999/')).toThrow(/port/);
    expect(() => parseTransportUrl('nonsense')).toThrow(/invalid transport_url/);
  });
  it('redacts passwords', () => {
    expect(redactUrl('rabbit://u1:secret@h1:5672,u2:pw@h2/')).toBe('rabbit://u1:***@h1:5672,u2:***@h2/');
  });
});
