// ferryd's memory and replies under hostile input: 30,000 seeded messages
// (member contexts, wrong types, huge fields, deep nesting, refused
// live_migration casts that each leave a record, broken envelopes, absurd
// `_timeout`s) published to one ferryd on libvirt's test driver. Prints its
// RSS at the start, every 10,000 messages and 5 s and 30 s after the run, and the
// replies. ferryd runs with the environment systemd/ferryd.service gives it.
// Run: npm run build && npx vite-node test/bench/hostile-messages.ts [count] [seed]   (RabbitMQ on 127.0.0.1:5672)
import { fire, startFerryd } from '../hostile/under-fire.js';

const COUNT = Number(process.argv[2] ?? 30_000);
const SEED = Number(process.argv[3] ?? 11);
const mb = (kb: number) => (kb / 1024).toFixed(1);

const ferryd = await startFerryd('ferry-bench-hostile');
try {
  const pid = ferryd.proc.pid;
  await new Promise((r) => setTimeout(r, 2_000));
  const start = await ferryd.rssKb();
  console.log(`ferryd pid ${pid}: RSS at start ${mb(start)} MB`);
  const started = performance.now();
  const report = await fire(ferryd, {
    count: COUNT,
    seed: SEED,
    every: 10_000,
    onProgress: async (sent) => console.log(`after ${sent} messages: RSS ${mb(await ferryd.rssKb())} MB`),
  });
  const seconds = (performance.now() - started) / 1000;
  console.log(`sent ${report.sent} in ${seconds.toFixed(1)} s (${Math.round(report.sent / seconds)}/s), by kind ${JSON.stringify(report.byKind)}`);
  console.log(`calls ${report.expected}, answered ${report.answered}, missing ${report.expected - report.answered}, duplicate finals ${report.duplicateFinals}, heartbeats ${report.heartbeats}, strays ${report.strays}`);
  // V8 gives memory back once the flood is over (its memory reducer runs on idle).
  for (const after of [5, 30]) {
    await new Promise((r) => setTimeout(r, (after === 5 ? 5 : 25) * 1000));
    const end = await ferryd.rssKb();
    console.log(`RSS ${after} s after: ${mb(end)} MB (${end - start >= 0 ? '+' : ''}${mb(end - start)} MB from the start)`);
  }
  console.log(`same pid alive: ${ferryd.proc.exitCode === null && ferryd.proc.pid === pid}`);
} finally {
  await ferryd.stop();
}
