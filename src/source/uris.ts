// Migration URIs (Nova libvirt driver: _live_migration_uri / _migrate_uri)
// and the listen addresses of the destination's domain XML. They come from
// the caller or from the destination's reply, so each is checked where it is
// used: an address, a host name, or (in a URI) either with a port; nothing
// that could add a path, a query or a user.
import { InvalidHostname, InvalidInput } from '../nova/errors.js';
import { authority, isAddress, NOVA_HOSTNAME, parseHostPort, type HostPort } from '../validate/address.js';

/** Nova's check on the destination before anything is built from it (is_valid_hostname). */
export function validateHostname(dest: string): void {
  if (!NOVA_HOSTNAME.test(dest)) throw new InvalidHostname(dest, 'dest');
}

/**
 * A URI's host part: an IP address or host name, optionally with a port
 * (`[v6]:port` for IPv6); a bare IPv6 address gets brackets. `what` names the
 * value in the refusal.
 *
 *   uriHost('fe80::1', 'dest')                  // '[fe80::1]'
 *   uriHost('10.0.0.2:49152', 'dest')           // '10.0.0.2:49152'
 *   uriHost('h/system?command=/bin/sh', 'dest') // throws InvalidInput naming dest
 */
export function uriHost(value: string, what: string): string {
  return authority(hostPort(value, what));
}

function hostPort(value: string, what: string): HostPort {
  const hp = parseHostPort(value);
  if (hp === null) throw new InvalidInput(`${what}: '${value}' is not an IP address or host name (with an optional port)`);
  return hp;
}

/** A listen address the destination chose (VNC, SPICE, serial): an IP address or host name, or null; `what` names it. */
export function listenAddress(value: string | null | undefined, what: string): string | null {
  if (value === null || value === undefined) return null;
  if (!isAddress(value)) throw new InvalidInput(`${what}: '${value}' is not an IP address or host name`);
  return value;
}

/** A list of TCP ports the destination sent (serial_listen_ports), checked before it goes into the domain XML; none is an empty list. */
export function listenPorts(value: unknown, what: string): number[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value) || !value.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535)) throw new InvalidInput(`${what}: expected a list of TCP ports`);
  return value as number[];
}

/** Peer-to-peer connection URI: qemu+<scheme or tcp>://<dest>/system. */
export function connectionUri(dest: string, scheme: string | null | undefined, what: string): string {
  return `qemu+${scheme || 'tcp'}://${uriHost(dest, what)}/system`;
}

/** Migration data stream URI (migrate_uri). */
export function dataUri(addr: string, what: string): string {
  return `tcp://${uriHost(addr, what)}`;
}

/**
 * The disks' NBD URI (disks_uri): the same host as the memory stream,
 * without its port, which the destination's NBD server does not share.
 *
 *   disksUri('10.0.0.2:49152', 'dest')  // 'tcp://10.0.0.2'
 *   disksUri('fd00::2', 'dest')         // 'tcp://[fd00::2]'
 */
export function disksUri(addr: string, what: string): string {
  return `tcp://${authority({ ...hostPort(addr, what), port: null })}`;
}
