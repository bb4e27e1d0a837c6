// A local file copied into a file of another host through that host's
// libvirtd: libvirt's own volume upload (virStorageVolUpload over a stream),
// no copy protocol of ours. The far file must exist already, at least as
// large; a transient dir pool over its folder makes it a volume for as long
// as the upload runs, and destroying that pool leaves every file in place.

import { dirname } from 'node:path';
import { isVirError, VirErrorCode, type Connection, type StoragePool, type Stream } from '../libvirt/types.js';
import type { Logger } from '../log/logger.js';
import type { HostStorage } from './host-storage.js';
import { parseXml, serializeXml } from './xml.js';

/** Bytes read per virStreamSend; libvirt splits them into its own packets. */
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
 * resolves with the bytes sent once the far side confirmed them
 * (virStreamFinish). `poolName` names the transient pool; one of that name
 * left by an earlier attempt is destroyed first, or its folder would stay
 * claimed ("Storage source conflict") for every later upload.
 */
export async function uploadFile(storage: HostStorage, remote: Connection, path: string, size: number, poolName: string, log: Logger): Promise<number> {
  await destroyStalePool(remote, poolName, log);
  const pool = await remote.storagePoolCreateXML(dirPoolXml(poolName, dirname(path)));
  try {
    const vol = await remote.storageVolLookupByPath(path);
    try {
      const stream = await remote.newStream();
      try {
        await vol.upload(stream, 0, size);
        return await sendAll(storage, stream, path, size);
      } finally {
        stream.free();
      }
    } finally {
      vol.free();
    }
  } finally {
    // The upload's own outcome stands; a pool left behind is destroyed by the next attempt.
    await pool.destroy().catch((err: unknown) => log.error({ err, pool: poolName }, 'could not destroy the upload pool'));
    pool.free();
  }
}

/** The file's bytes through the stream, every chunk until libvirt took all of it; aborted on any failure. */
async function sendAll(storage: HostStorage, stream: Stream, path: string, size: number): Promise<number> {
  let sent = 0;
  try {
    for await (const chunk of storage.readChunks(path, CHUNK_BYTES)) {
      for (let off = 0; off < chunk.length; ) off += await stream.send(chunk.subarray(off));
      sent += chunk.length;
    }
    if (sent !== size) throw new Error(`${path} changed while it was uploaded: ${sent} bytes read, ${size} expected`);
    await stream.finish();
    return sent;
  } catch (err) {
    await stream.abort().catch(() => undefined);
    throw err;
  }
}

async function destroyStalePool(remote: Connection, name: string, log: Logger): Promise<void> {
  let stale: StoragePool;
  try {
    stale = await remote.storagePoolLookupByName(name);
  } catch (err) {
    if (isVirError(err) && err.code === VirErrorCode.NO_STORAGE_POOL) return;
    throw err;
  }
  try {
    log.warn({ pool: name }, 'destroying an upload pool an earlier attempt left behind');
    await stale.destroy();
  } finally {
    stale.free();
  }
}
