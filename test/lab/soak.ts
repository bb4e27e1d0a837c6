// Hand-run soak of the two migrations that QEMU 7.2's TCG dirty-tracking bug
// broke (see ramWorkaroundArgs in guest.ts); not part of the suite:
//   npx vite-node test/lab/soak.ts -- [--runs N] [--kind dirty|idle|both] [--without-workaround]
// dirty: a guest dirtying 32 MiB at 8 MB/s, pre-copy at 20 MiB/s (binding test f).
// idle:  an idle guest at 5 MiB/s (the e2e flake).
// Each run boots a fresh guest on A, migrates it to B and passes when the
// heartbeat goes on counting on B for 8 s with no oops and no lost write.
import { randomUUID } from 'node:crypto';
import { MigrateFlag, openConnection, type Connection } from '../../src/libvirt/index.js';
import { cliOption as opt, sleep } from './exec.js';
import { guestXml, prepareInstanceDir } from './guest.js';
import { ensureGuestImage } from './guest-image.js';
import { lastHeartbeat, readConsole, waitForConsole, waitForHeartbeat } from './heartbeat.js';
import { startLab, type LabHost } from './lab.js';

const BASE = MigrateFlag.LIVE | MigrateFlag.PEER2PEER | MigrateFlag.PERSIST_DEST | MigrateFlag.UNDEFINE_SOURCE;
type Kind = 'dirty' | 'idle';

async function once(kind: Kind, a: LabHost, b: LabHost, connA: Connection, connB: Connection, ramWorkaround: boolean): Promise<string | undefined> {
  const uuid = randomUUID();
  await prepareInstanceDir(a, uuid);
  await prepareInstanceDir(b, uuid);
  const spec = { name: `soak-${uuid.slice(0, 8)}`, uuid, memoryMiB: 256, ramWorkaround, ...(kind === 'dirty' ? { dirty: { mib: 32, rateMBs: 8 } } : {}) };
  const dom = await connA.createXML(await guestXml(spec));
  try {
    await waitForHeartbeat(a, uuid, { after: 1, timeoutMs: 60_000 });
    if (kind === 'dirty') await waitForConsole(a, uuid, /^ferry-dirty start/m, { timeoutMs: 20_000 });
    await sleep(3_000);
    await dom.migrateToURI3(b.uri, { migrate_uri: `tcp://${b.migrationAddr}`, bandwidth: kind === 'dirty' ? 20 : 5 }, BASE);
    const lastOnA = await lastHeartbeat(a, uuid);
    try {
      await waitForHeartbeat(b, uuid, { after: lastOnA, timeoutMs: 30_000 });
    } catch {
      return `no heartbeat on B after ${lastOnA}`;
    }
    const first = await lastHeartbeat(b, uuid);
    await sleep(8_000);
    const text = await readConsole(b, uuid);
    const bad = /Kernel panic|BUG:|Oops|ferry-dirty lost-write.*/.exec(text);
    if (bad) return `guest on B printed: ${bad[0]}`;
    const now = await lastHeartbeat(b, uuid);
    if (now < first + 6) return `heartbeat on B stalled at ${now} (was ${first} 8 s earlier)`;
    return undefined;
  } finally {
    for (const c of [connA, connB]) {
      const d = await c.lookupByUUID(uuid).catch(() => undefined);
      if (d) {
        if (await d.isActive().catch(() => false)) await d.destroy().catch(() => undefined);
        await d.undefine().catch(() => undefined);
      }
    }
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((x) => x !== '--');
  const runs = Number(opt(args, 'runs', '30'));
  const kindArg = opt(args, 'kind', 'both');
  const kinds: Kind[] = kindArg === 'both' ? ['dirty', 'idle'] : [kindArg as Kind];
  const ramWorkaround = !args.includes('--without-workaround');
  await ensureGuestImage();
  const lab = await startLab({ hosts: 2, name: 'soak' });
  const [a, b] = lab.hosts as [LabHost, LabHost];
  const connA = await openConnection(a.uri);
  const connB = await openConnection(b.uri);
  const summary: string[] = [];
  try {
    for (const kind of kinds) {
      let passed = 0;
      for (let i = 1; i <= runs; i++) {
        const t = Date.now();
        const failure = await once(kind, a, b, connA, connB, ramWorkaround).catch((e: unknown) => `error: ${String(e)}`);
        if (!failure) passed++;
        console.log(`${kind} run ${i}/${runs}: ${failure ? `FAILED (${failure})` : 'ok'} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      }
      summary.push(`${kind}: ${passed} of ${runs} passed${ramWorkaround ? '' : ' (without the RAM workaround)'}`);
    }
  } finally {
    await connA.close().catch(() => undefined);
    await connB.close().catch(() => undefined);
    await lab.stop();
  }
  for (const line of summary) console.log(line);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
