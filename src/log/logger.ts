// Structured JSON logs (pino) on stdout, for journald and log shippers.
// Secrets in request contexts are redacted by the RPC layer before logging;
// these paths are a second line of defence.

import pino from 'pino';

export type Logger = pino.Logger;

/**
 * ferryd's logger: JSON lines on stdout, or into `stream` (prettyStream for
 * a person at a terminal). The same redaction either way.
 */
export function createLogger(opts: { level?: string; name?: string; host?: string; stream?: pino.DestinationStream } = {}): Logger {
  const options: pino.LoggerOptions = {
    name: opts.name ?? 'ferryd',
    level: opts.level ?? 'info',
    base: { host: opts.host },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['*.auth_token', '*.password', '*.*.auth_token', 'context.raw'], censor: '***' },
  };
  return opts.stream ? pino(options, opts.stream) : pino(options);
}

/**
 * One readable line per entry on stdout (pino-pretty, synchronous, so nothing
 * is lost at exit), coloured at a terminal. Loaded only when asked for: the
 * daemon under systemd writes JSON and need not carry it.
 */
export async function prettyStream(): Promise<pino.DestinationStream> {
  const { default: pretty } = await import('pino-pretty');
  return pretty({ sync: true, colorize: process.stdout.isTTY, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name' });
}

/**
 * The logger for one migration: every line carries its uuid, its
 * instance's and the id of the request that started it, so a search by any
 * of the three finds the migration's whole story.
 */
export function migrationLogger(log: Logger, ids: { migration: string; instance: string; requestId: string | null }): Logger {
  return log.child({ migration: ids.migration, ...requestFields(ids) });
}

/** The logger for one request about an instance (the destination's side of a migration): its uuid and the request id. */
export function requestLogger(log: Logger, ids: { instance: string; requestId: string | null }): Logger {
  return log.child(requestFields(ids));
}

function requestFields(ids: { instance: string; requestId: string | null }): Record<string, string> {
  return { instance: ids.instance, ...(ids.requestId ? { request_id: ids.requestId } : {}) };
}

/** A logger that drops everything, for tests and library defaults. */
export const silentLogger: Logger = pino({ level: 'silent' });
