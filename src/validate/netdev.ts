// Network device names and MAC addresses: what goes into a guest's
// <interface> from a port binding (the conductor's, or a peer host's reply).

/** A Linux interface name: 1-15 characters (IFNAMSIZ less the NUL), no slash, colon or white space, not "." or "..". */
export function isInterfaceName(value: string): boolean {
  return /^[A-Za-z0-9_.-]{1,15}$/.test(value) && value !== '.' && value !== '..';
}

/** A MAC address as six colon-separated hex pairs, e.g. fa:16:3e:12:34:56. */
export function isMacAddress(value: string): boolean {
  return /^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$/.test(value);
}
