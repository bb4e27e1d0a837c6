// Monitor settings for policy tests: Nova's policy, no timeout, nothing armed,
// the adaptive limits at the config defaults. Tests override what they test.
import type { MonitorSettings } from '../../../src/monitor/policy.js';

export function monitorSettings(over: Partial<MonitorSettings> = {}): MonitorSettings {
  const postCopyPermitted = over.postCopyPermitted ?? false;
  return {
    policy: 'nova',
    downtimeSteps: [],
    completionTimeout: 0,
    timeoutAction: 'abort',
    postCopyPermitted,
    ...over,
    convergence: {
      maxDowntimeMs: 500,
      initialDowntimeMs: 50,
      stall: { windowSeconds: 10, progressFraction: 0.04 },
      postCopyPermitted,
      autoConvergePermitted: false,
      actOnStall: false,
      ...over.convergence,
    },
  };
}
