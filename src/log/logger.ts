// Structured JSON logs (pino) on stdout, for journald and log shippers.
// Secrets in request contexts are redacted by the RPC layer before logging;
// these paths are a second line of defence.

import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(opts: { level?: string; name?: string; host?: string } = {}): Logger {
  return pino({
    name: opts.name ?? 'ferryd',
    level: opts.level ?? 'info',
    base: { host: opts.host },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['*.auth_token', '*.password', '*.*.auth_token', 'context.raw'], censor: '***' },
  });
}

/** A logger that drops everything, for tests and library defaults. */
export const silentLogger: Logger = pino({ level: 'silent' });
