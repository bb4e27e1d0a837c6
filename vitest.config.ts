import { defineConfig } from 'vitest/config';

// Lab tests boot real libvirtd daemons and TCG guests on a 2-core machine,
// so test files run one at a time.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 300_000,
    reporters: ['default'],
  },
});
