// Monitor settings for policy tests: Nova's policy, no timeout, nothing armed,
// the adaptive limits at the config defaults. Tests override what they test.
import type { ConvergenceSettings } from '../../../src/monitor/adaptive-policy.js';
import type { MonitorSettings } from '../../../src/monitor/policy.js';

/** Overrides as the tests write them: `postCopyPermitted` at the top, the rest of `convergence` in part. */
export type SettingsOverrides = Partial<Omit<MonitorSettings, 'convergence'>> & { postCopyPermitted?: boolean; convergence?: Partial<ConvergenceSettings> };

export function monitorSettings(over: SettingsOverrides = {}): MonitorSettings {
  const { postCopyPermitted = false, ...rest } = over;
  return {
    policy: 'nova',
    downtimeSteps: [],
    completionTimeout: 0,
    timeoutAction: 'abort',
    ...rest,
    convergence: {
      maxDowntimeMs: 500,
      initialDowntimeMs: 50,
      stall: { windowSeconds: 10, progressFraction: 0.04 },
      postCopyPermitted,
      autoConvergePermitted: false,
      measuredDirtyRateBps: null,
      actOnStall: false,
      ...over.convergence,
    },
  };
}
