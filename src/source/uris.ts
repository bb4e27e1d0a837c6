// Migration URIs (Nova libvirt driver: _live_migration_uri / _migrate_uri).
// Their host comes from the caller or from the destination's reply, so it is
// checked where the URI is built: an address, a host name, or either with a
// port, nothing that could add a path, a query or a user to the URI.
import { isIP, isIPv6 } from 'node:net';
import { HOSTNAME } from '../config/index.js';
import { InvalidHostname, InvalidInput } from '../nova/errors.js';

/** Nova's check on the destination before anything is built from it (is_valid_hostname). */
export function validateHostname(dest: string): void {
  if (!HOSTNAME.test(dest)) throw new InvalidHostname(dest);
}

const HOST_NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;

/**
 * A URI's host part: an IP address or host name, optionally with a port
 * (`[v6]:port` for IPv6); a bare IPv6 address gets brackets (oslo
 * escape_ipv6). `what` names the value in the refusal.
 *
 *   uriHost('fe80::1', 'dest')                  // '[fe80::1]'
 *   uriHost('10.0.0.2:49152', 'dest')           // '10.0.0.2:49152'
 *   uriHost('h/system?command=/bin/sh', 'dest') // throws InvalidInput naming dest
 */
export function uriHost(value: string, what: string): string {
  if (isIPv6(value)) return `[${value}]`;
  const v6 = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(value);
  const plain = /^([^:[\]]+)(?::(\d{1,5}))?$/.exec(value);
  const [host, port] = v6 ? [v6[1]!, v6[2]] : plain ? [plain[1]!, plain[2]] : ['', undefined];
  const hostOk = v6 ? isIPv6(host) : host.length <= 253 && (isIP(host) !== 0 || HOST_NAME.test(host));
  if (!hostOk || (port !== undefined && Number(port) > 65535)) {
    throw new InvalidInput(`${what}: '${value}' is not an IP address or host name (with an optional port)`);
  }
  return value;
}

/** Peer-to-peer connection URI: qemu+<scheme or tcp>://<dest>/system. */
export function connectionUri(dest: string, scheme: string | null | undefined, what: string): string {
  return `qemu+${scheme || 'tcp'}://${uriHost(dest, what)}/system`;
}

/** Migration data stream URI (migrate_uri). */
export function dataUri(addr: string, what: string): string {
  return `tcp://${uriHost(addr, what)}`;
}
