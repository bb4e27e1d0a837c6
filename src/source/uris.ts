// Migration URIs (Nova libvirt driver: _live_migration_uri / _migrate_uri).
import { isIPv6 } from 'node:net';
import { HOSTNAME } from '../config/index.js';
import { InvalidHostname } from '../nova/errors.js';

/** Nova's check on the destination before anything is built from it (is_valid_hostname). */
export function validateHostname(dest: string): void {
  if (!HOSTNAME.test(dest)) throw new InvalidHostname(dest);
}

/** oslo escape_ipv6: only a bare, valid IPv6 literal gets brackets. */
export function escapeIpv6(host: string): string {
  return isIPv6(host) ? `[${host}]` : host;
}

/** Peer-to-peer connection URI: qemu+<scheme or tcp>://<dest>/system. */
export function connectionUri(dest: string, scheme?: string | null): string {
  return `qemu+${scheme || 'tcp'}://${escapeIpv6(dest)}/system`;
}

/** Migration data stream URI (migrate_uri). */
export function dataUri(addr: string): string {
  return `tcp://${escapeIpv6(addr)}`;
}
