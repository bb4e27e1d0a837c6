#!/usr/bin/env node
// ferryd: the per-host live-migration agent.

import { ConfigError, LOG_LEVELS, readConfig } from '../config/index.js';
import { isVirError } from '../libvirt/types.js';
import { createLogger, prettyStream } from '../log/logger.js';
import { startDaemon, type Daemon } from '../compute/daemon.js';
import { statusLine, SystemdNotifier } from '../compute/systemd-notify.js';
import { parseArgs } from 'node:util';

const HELP = `Usage: ferryd [--config FILE] [--log-level LEVEL] [--pretty]

The ferry compute agent: serves Nova's live-migration RPC methods on the
'compute' and 'compute-alt' topics of RabbitMQ (oslo.messaging wire format)
and migrates guests with libvirt.

Options:
  -c, --config FILE   configuration: JSON (config/ferry.example.json), or
                      nova.conf's INI format when FILE ends in .conf or .ini
                      (config/ferry.example.conf); options Nova reads and
                      ferry does not are logged once and ignored
      --log-level L   fatal, error, warn, info, debug or trace; overrides the
                      configuration's log_level
      --pretty        one readable line per log entry instead of JSON, for a
                      person at a terminal (the journal wants JSON)
      --check-config  validate the configuration (file and environment) and
                      exit: 0 when valid, 78 naming the key when not; connects
                      to nothing
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
        'check-config': { type: 'boolean' },
        'log-level': { type: 'string' },
        pretty: { type: 'boolean' },
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
  const logLevel = values['log-level'];
  if (logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    process.stderr.write(`ferryd: --log-level: expected one of ${LOG_LEVELS.join(', ')}, not ${logLevel}\n${HELP}`);
    process.exit(2);
  }
  let config;
  let ignored: string[];
  try {
    ({ config, ignored } = readConfig({ file: values.config }));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ferryd: invalid configuration: ${err.message}\n`);
      process.exit(78); // EX_CONFIG: systemd does not restart-loop on it with RestartPreventExitStatus
    }
    throw err;
  }
  if (values['check-config']) {
    process.stdout.write(`ferryd: configuration valid${values.config ? ` (${values.config})` : ''}: host ${config.host}, transport ${config.transport_url.replace(/\/\/[^@/]*@/, '//***@')}\n`);
    if (ignored.length > 0) process.stdout.write(`ferryd: ignored, Nova's and not ferry's: ${ignored.join(', ')}\n`);
    return;
  }
  const log = createLogger({ level: logLevel ?? config.log_level, host: config.host, stream: values.pretty ? await prettyStream() : undefined });
  if (ignored.length > 0) log.warn({ file: values.config, ignored }, `configuration: ${ignored.length} of Nova's options ferry does not use, ignored`);
  let daemon: Daemon | null = null;
  let stopping = false;
  // Set once ferryd serves: tells systemd it stops.
  let onStopping = (): Promise<void> => Promise.resolve();
  const stop = (signal: string) => {
    if (stopping) {
      // Safe to leave at once: records and unsent messages are on disk, and the next start carries them on.
      log.warn({ signal }, 'second signal: exiting now; the next start carries on the migrations under way');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping');
    // Still starting (e.g. retrying RabbitMQ): nothing to drain. exitCode is 1 if libvirt's close asked for the stop.
    if (!daemon) process.exit(process.exitCode ?? 0);
    const running = daemon;
    onStopping().then(() => running.stop()).then(
      () => process.exit(process.exitCode ?? 0),
      (err: unknown) => {
        log.error({ err }, 'unclean stop');
        process.exit(1);
      },
    );
  };
  // Before startDaemon: a signal during start-up (libvirt's close handler sends one) must not kill
  // the process by SIGTERM, which systemd's Restart=on-failure takes for a clean stop.
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  const systemd = new SystemdNotifier(process.env, log);
  try {
    daemon = await startDaemon(config, log);
  } catch (err) {
    // An unreachable or failing libvirt is an operational condition, not a bug: one line, no stack.
    if (!isVirError(err)) throw err;
    log.fatal({ uri: config.libvirt.connection_uri, error: err.message, code: err.code }, 'cannot start: libvirt failed');
    process.stderr.write(`ferryd: cannot start: libvirt at ${config.libvirt.connection_uri}: ${err.message}\n`);
    process.exit(1);
  }
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  const { registry } = daemon;
  let status = statusLine(registry.list());
  await systemd.send('READY=1', `STATUS=${status}`);
  systemd.startWatchdog();
  // Status changes only: every poll of every migration is a change too, and the line counts statuses.
  registry.on('change', (r, previous) => {
    if (r.status === previous) return;
    const now = statusLine(registry.list());
    if (now !== status && !stopping) void systemd.send(`STATUS=${(status = now)}`);
  });
  onStopping = () => {
    systemd.stopWatchdog();
    return systemd.send('STOPPING=1', 'STATUS=stopping: draining the migrations under way');
  };
}

main().catch((err: unknown) => {
  process.stderr.write(`ferryd: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
