// A local file copied into a file of another host through that host's
// libvirtd: libvirt's own volume upload (virStorageVolUpload over a stream),
// no copy protocol of ours. The far file must exist already, at least as
// large; a transient dir pool over its folder makes it a volume for as long
// as the upload runs, and destroying that pool leaves every file in place.

import { dirname } from 'node:path';
import type { Connection, StoragePool } from '../libvirt/types.js';
import type { HostStorage } from './host-storage.js';
import { parseXml, serializeXml } from './xml.js';

/** Bytes per virStreamSend: libvirt's own limit for one stream packet is 256 KiB. */
const CHUNK_BYTES = 256 * 1024;

/** A transient dir pool named `name` over `dir`. */
export function dirPoolXml(name: string, dir: string): string {
  const doc = parseXml('<pool type="dir"><name/><target><path/></target></pool>');
  const root = doc.documentElement;
  root.getElementsByTagName('name')[0]!.textContent = name;
  root.getElementsByTagName('path')[0]!.textContent = dir;
  return serializeXml(doc);
}

/**
 * Copies `path` on this host to the same path on the host behind `remote`;
 * resolves with the bytes sent once the far side confirmed them (virStreamFinish).
 */
export async function uploadFile(storage: HostStorage, remote: Connection, path: string, size: number, poolName: string): Promise<number> {
  const pool: StoragePool = await remote.storagePoolCreateXML(dirPoolXml(poolName, dirname(path)));
  try {
    const vol = await remote.storageVolLookupByPath(path);
    const stream = await remote.newStream();
    try {
      await vol.upload(stream, 0, size);
      let sent = 0;
      try {
        for await (const chunk of storage.readChunks(path, CHUNK_BYTES)) sent += await stream.send(chunk);
        if (sent !== size) throw new Error(`${path} changed while it was uploaded: ${sent} bytes read, ${size} expected`);
        await stream.finish();
      } catch (err) {
        await stream.abort().catch(() => undefined);
        throw err;
      }
      return sent;
    } finally {
      stream.free();
      vol.free();
    }
  } finally {
    await pool.destroy();
    pool.free();
  }
}
