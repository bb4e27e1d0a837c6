// Addresses: what may stand as the host of a URI ferry builds. An IP address
// or a host name, optionally with a port; nothing that could add a user, a
// path or a query, since the value may come from a peer host's reply.
import { isIP, isIPv6 } from 'node:net';

/** A host and port split out of `host`, `host:port`, `v6`, `[v6]` or `[v6]:port`. */
export interface HostPort {
  host: string;
  port: number | null;
  ipv6: boolean;
}

/** RFC 1123 labels of letters, digits and hyphens (underscores tolerated, as in Nova's hosts), at most 253 characters, a trailing dot allowed. */
const HOST_NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** Nova's is_valid_hostname character set: host names, IPv4 and bare IPv6 (no brackets). */
export const NOVA_HOSTNAME = /^[\w\-.:]+$/;

export function isHostName(value: string): boolean {
  return value.length <= 253 && HOST_NAME.test(value);
}

/** An IP address (v4 or v6, no brackets) or a host name. */
export function isAddress(value: string): boolean {
  return isIP(value) !== 0 || isHostName(value);
}

/**
 * The host and port of an address, or null when it is anything else.
 *
 *   parseHostPort('10.0.0.2:49152')          // { host: '10.0.0.2', port: 49152, ipv6: false }
 *   parseHostPort('fe80::1')                 // { host: 'fe80::1', port: null, ipv6: true }
 *   parseHostPort('[2001:db8::5]:16509')     // { host: '2001:db8::5', port: 16509, ipv6: true }
 *   parseHostPort('h/system?command=/bin/sh') // null
 *   parseHostPort('root@h')                  // null
 */
export function parseHostPort(value: string): HostPort | null {
  if (isIPv6(value)) return { host: value, port: null, ipv6: true };
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(value);
  if (bracketed) {
    const port = portOf(bracketed[2]);
    return isIPv6(bracketed[1]!) && port !== undefined ? { host: bracketed[1]!, port, ipv6: true } : null;
  }
  const plain = /^([^:[\]]+)(?::(\d{1,5}))?$/.exec(value);
  if (!plain) return null;
  const port = portOf(plain[2]);
  return isAddress(plain[1]!) && port !== undefined ? { host: plain[1]!, port, ipv6: false } : null;
}

/** null for no port, undefined for one out of range. */
function portOf(digits: string | undefined): number | null | undefined {
  if (digits === undefined) return null;
  const port = Number(digits);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** The authority of a URI: IPv6 in brackets (oslo escape_ipv6), `:port` when there is one. */
export function authority(hp: HostPort): string {
  const host = hp.ipv6 ? `[${hp.host}]` : hp.host;
  return hp.port === null ? host : `${host}:${hp.port}`;
}
