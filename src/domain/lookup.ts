// Finding a guest by its instance UUID, where "no such domain" is an answer
// rather than an error.

import { isVirError, VirErrorCode, type Connection, type Domain } from '../libvirt/types.js';

/** The domain, or null when libvirt has none with this UUID. */
export async function findDomain(libvirt: Connection, uuid: string): Promise<Domain | null> {
  try {
    return await libvirt.lookupByUUID(uuid);
  } catch (err) {
    if (isVirError(err) && err.code === VirErrorCode.NO_DOMAIN) return null;
    throw err;
  }
}
