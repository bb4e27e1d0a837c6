// Before the transfer: the guest's dirty rate as libvirt samples it
// (virDomainStartDirtyRateCalc in page-sampling mode, which works under TCG
// and KVM alike, then the 'dirtyrate' domain stats). The adaptive policy arms
// post-copy or auto-converge by it when the operator permits both.

import { DirtyRateMode, DirtyRateStatus, DomainStatsType, type Domain } from '../libvirt/types.js';

/** Sampling time libvirt is asked for: long enough to see a working set, short enough not to delay the start much. */
export const DIRTY_RATE_SAMPLE_SECONDS = 1;
/** How long past the sample the result is waited for. */
const RESULT_GRACE_MS = 2_000;
const POLL_MS = 200;

/**
 * The guest's dirty rate in bytes/s, or why it could not be measured (an
 * error from libvirt, no result in time): the caller then decides as if
 * nothing were known.
 */
export async function measureDirtyRate(dom: Domain): Promise<{ bytesPerSec: number } | { unknown: string }> {
  try {
    await dom.startDirtyRateCalc(DIRTY_RATE_SAMPLE_SECONDS, DirtyRateMode.PAGE_SAMPLING);
    await sleep(DIRTY_RATE_SAMPLE_SECONDS * 1000);
    for (const deadline = Date.now() + RESULT_GRACE_MS; ; await sleep(POLL_MS)) {
      const stats = await dom.listGetStats(DomainStatsType.DIRTYRATE);
      const mbps = stats['dirtyrate.megabytes_per_second'];
      if (stats['dirtyrate.calc_status'] === DirtyRateStatus.MEASURED && typeof mbps === 'number') return { bytesPerSec: mbps * 2 ** 20 };
      if (Date.now() >= deadline) return { unknown: `no dirty-rate result ${RESULT_GRACE_MS} ms after the ${DIRTY_RATE_SAMPLE_SECONDS} s sample (calc_status ${String(stats['dirtyrate.calc_status'])})` };
    }
  } catch (err) {
    return { unknown: err instanceof Error ? err.message : String(err) };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
