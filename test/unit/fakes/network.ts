// The host's bridges as a test sets them, in place of `ip link`.
import { HostNetwork, type BridgeKind } from '../../../src/domain/host-network.js';

export class FakeHostNetwork extends HostNetwork {
  readonly bridges = new Map<string, BridgeKind>();

  override async bridgeKind(name: string): Promise<BridgeKind | null> {
    return this.bridges.get(name) ?? null;
  }
}
