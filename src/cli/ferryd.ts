#!/usr/bin/env node
// ferryd: the per-host live-migration agent.

import { ConfigError, loadConfig } from '../config/index.js';
import { createLogger } from '../log/logger.js';
import { startDaemon } from './daemon.js';
import { parseArgs } from 'node:util';

const HELP = `Usage: ferryd [--config FILE]

The ferry compute agent: serves Nova's live-migration RPC methods on the
'compute' and 'compute-alt' topics of RabbitMQ (oslo.messaging wire format)
and migrates guests with libvirt.

Options:
  -c, --config FILE   JSON configuration (see config/ferry.example.json)
  -h, --help          show this help
  -V, --version       show the version

Every option can also come from the environment: FERRY_<KEY>, with "__" between
section and key, e.g. FERRY_HOST, FERRY_TRANSPORT_URL, FERRY_LIBVIRT__CONNECTION_URI.
An invalid value stops ferryd at start with a message naming the key.
`;

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
    }));
  } catch (err) {
    process.stderr.write(`ferryd: ${(err as Error).message}\n${HELP}`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (values.version) {
    process.stdout.write('ferryd 0.1.0\n');
    return;
  }
  let config;
  try {
    config = loadConfig({ file: values.config });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ferryd: invalid configuration: ${err.message}\n`);
      process.exit(78); // EX_CONFIG: systemd does not restart-loop on it with RestartPreventExitStatus
    }
    throw err;
  }
  const log = createLogger({ level: config.log_level, host: config.host });
  const daemon = await startDaemon(config, log);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    daemon.stop().then(
      () => process.exit(process.exitCode ?? 0),
      (err: unknown) => {
        log.error({ err }, 'unclean stop');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
}

main().catch((err: unknown) => {
  process.stderr.write(`ferryd: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
