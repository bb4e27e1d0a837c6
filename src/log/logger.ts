// Structured JSON logs (pino) on stdout, for journald and log shippers.
// Secrets in request contexts are redacted by the RPC layer before logging;
// these paths are a second line of defence.

import pino from 'pino';
import pretty from 'pino-pretty';

export type Logger = pino.Logger;

/**
 * ferryd's logger: JSON lines on stdout, or with `pretty` one coloured line
 * each for a person at a terminal (pino-pretty, synchronous, so nothing is
 * lost at exit). The same redaction either way.
 */
export function createLogger(opts: { level?: string; name?: string; host?: string; pretty?: boolean } = {}): Logger {
  const options: pino.LoggerOptions = {
    name: opts.name ?? 'ferryd',
    level: opts.level ?? 'info',
    base: { host: opts.host },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['*.auth_token', '*.password', '*.*.auth_token', 'context.raw'], censor: '***' },
  };
  return opts.pretty ? pino(options, pretty({ sync: true, colorize: process.stdout.isTTY, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name' })) : pino(options);
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
