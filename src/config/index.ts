// Loading and validating ferry's configuration.
// Precedence: schema defaults < file < environment (FERRY_*) < overrides.
import { readFileSync } from 'node:fs';
import convict from 'convict';
// rpc is below config in the layer order; one JSON-object check serves both.
import { isPlainObject } from '../rpc/args.js';
import { isNovaConfFile, readNovaConf } from './nova-conf.js';
import { buildSchema, type SchemaNode } from './schema.js';
import type { FerryConfig } from './types.js';

export type { FerryConfig, LibvirtConfig, ComputeConfig, MetricsConfig, RabbitConfig, LogLevel } from './types.js';
export { envVarName, LOG_LEVELS, TIMEOUT_ACTIONS } from './schema.js';

/** Invalid configuration. The message and each issue start with the dotted key, e.g. "libvirt.live_migration_downtime: must be >= 100". */
export class ConfigError extends Error {
  readonly issues: string[];
  constructor(issues: string[], source?: string) {
    super(issues.join('; ') + (source ? ` (in ${source})` : ''));
    this.name = 'ConfigError';
    this.issues = issues;
  }
  /** The keys named by the issues. */
  get keys(): string[] {
    return this.issues.map((i) => i.slice(0, i.indexOf(':')));
  }
}

export interface LoadConfigOptions {
  /** JSON file in the schema's shape, or nova.conf's INI format (.conf, .ini) */
  file?: string;
  /** defaults to process.env */
  env?: Record<string, string | undefined>;
  /** highest precedence, same shape as the file */
  overrides?: Record<string, unknown>;
}

/** Convict's messages reworded so every line starts with the key. */
function issuesFrom(err: Error): string[] {
  return err.message
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) =>
      line
        .replace(/^configuration param '([^']+)' not declared in the schema$/, '$1: not declared in the schema')
        .replace(/^configuration param '([^']+)' missing from config.*$/, '$1: missing (a parent was overridden?)'),
    );
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([`file: cannot read ${file}: ${(e as Error).message}`]);
  }
}

/** The file's values in the schema's shape, and what in it ferry leaves to Nova. */
function readFile(file: string, schema: SchemaNode): { values: Record<string, unknown>; ignored: string[] } {
  if (!isNovaConfFile(file)) return { values: readJsonFile(file), ignored: [] };
  const conf = readNovaConf(readText(file), schema);
  if (conf.unknown.length > 0) throw new ConfigError(conf.unknown, file);
  return conf;
}

function readJsonFile(file: string): Record<string, unknown> {
  const text = readText(file);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ConfigError([`file: ${file} is not valid JSON: ${(e as Error).message}`]);
  }
  if (!isPlainObject(parsed)) throw new ConfigError([`file: ${file} must hold a JSON object`]);
  return withoutComments(parsed);
}

/** JSON has no comments: keys starting with "_" are dropped, at any level. */
function withoutComments(obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (k.startsWith('_')) continue;
    out[k] = isPlainObject(v) ? withoutComments(v) : v;
  }
  return out;
}

export function loadConfig(opts: LoadConfigOptions = {}): FerryConfig {
  return readConfig(opts).config;
}

/**
 * The configuration, and the options of a nova.conf-style file that Nova
 * reads and ferry does not ("[libvirt] images_type"), for the daemon to log
 * once.
 */
export function readConfig(opts: LoadConfigOptions = {}): { config: FerryConfig; ignored: string[] } {
  const env = opts.env ?? process.env;
  // args: [] so convict never reads process.argv.
  const schema = buildSchema();
  const cfg = convict<FerryConfig>(schema as never, { env: env as NodeJS.ProcessEnv, args: [] });
  let ignored: string[] = [];
  try {
    if (opts.file) {
      const file = readFile(opts.file, schema);
      ignored = file.ignored;
      // load() re-applies the environment on top of the file, and coerces the strings of an INI file by format.
      cfg.load(file.values);
    }
    if (opts.overrides) applyOverrides(cfg, opts.overrides, '');
    cfg.validate({ allowed: 'strict' });
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(issuesFrom(e as Error), opts.file);
  }
  return { config: cfg.getProperties(), ignored };
}

// set() per leaf, so overrides win over the environment (load() would not).
function applyOverrides(cfg: convict.Config<FerryConfig>, obj: Record<string, unknown>, prefix: string): void {
  for (const [key, value] of Object.entries(obj)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (isPlainObject(value)) applyOverrides(cfg, value, path);
    else (cfg.set as (k: string, v: unknown) => void)(path, value);
  }
}

/** The defaults, e.g. for documentation. */
export function defaultConfig(): FerryConfig {
  return loadConfig({ env: {} });
}
