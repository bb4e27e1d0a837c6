// The host's network devices as a destination needs them for a port's
// binding: is the bridge it names here, and is it a Linux bridge or an Open
// vSwitch one (`ip -d -j link`, the kernel's own word on the device's kind).
// ferry creates and removes no device: libvirt makes each guest's tap on the
// bridge when the guest arrives and removes it with the guest.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type BridgeKind = 'linux' | 'ovs';

export class HostNetwork {
  /** The kind of bridge `name` is on this host, or null when there is no such device or it is no bridge. */
  async bridgeKind(name: string): Promise<BridgeKind | null> {
    let out: string;
    try {
      ({ stdout: out } = await run('ip', ['-d', '-j', 'link', 'show', 'dev', name], { timeout: 10_000 }));
    } catch {
      return null;
    }
    const [link] = JSON.parse(out) as Array<{ linkinfo?: { info_kind?: string } }>;
    const kind = link?.linkinfo?.info_kind;
    return kind === 'bridge' ? 'linux' : kind === 'openvswitch' ? 'ovs' : null;
  }
}
