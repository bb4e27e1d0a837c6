// nova.conf's INI format as a configuration file (`ferryd --config
// /etc/ferry/ferry.conf`): sections and option names are Nova's, so an
// operator can copy their nova.conf lines, or whole sections. What Nova reads
// and ferry does not is set aside to be logged once; a section or option
// nobody reads is an error naming it. The values stay strings: convict
// coerces them by each option's format, as it does the environment's.
import { parse } from 'ini';
import { NOVA_OPTIONS, NOVA_SECTIONS } from './nova-options.js';
import type { SchemaNode } from './schema.js';

/** What a nova.conf-style file holds for ferry, in the schema's shape, and what ferry leaves to Nova. */
export interface NovaConf {
  values: Record<string, unknown>;
  /** "[libvirt] images_type", or "[neutron] (4 options)" for a section only Nova reads. */
  ignored: string[];
  /** Sections and options neither ferry nor Nova has, each "dotted.key: why". */
  unknown: string[];
}

/** Nova's name → ferry's, where ferry keeps one of Nova's options in another section. */
const NOVA_ALIASES: Readonly<Record<string, string>> = {
  'DEFAULT.max_concurrent_live_migrations': 'compute.max_concurrent_live_migrations',
};

/** A configuration file in nova.conf's format, by its name: .conf or .ini. */
export function isNovaConfFile(file: string): boolean {
  return /\.(conf|ini)$/.test(file);
}

/**
 * oslo.config has no inline comments: in `transport_url = rabbit://u:p#1@h/`
 * the `#` is part of the password. The ini package would cut the value
 * there, so `\`, `;` and `#` in an unquoted value are escaped for it to keep.
 *
 *     "password = a#b;c"  -> "password = a\#b\;c"
 *     "# a comment"       -> unchanged
 *     "key = 'quoted #'"  -> unchanged (quoted values are taken whole)
 */
export function escapeInlineComments(line: string): string {
  if (/^\s*([#;[]|$)/.test(line)) return line;
  const eq = line.indexOf('=');
  if (eq < 0) return line;
  const value = line.slice(eq + 1).trim();
  if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0]) return line;
  return line.slice(0, eq + 1) + line.slice(eq + 1).replace(/[\\;#]/g, (c) => `\\${c}`);
}

function isLeaf(node: SchemaNode[string] | undefined): boolean {
  return node !== undefined && 'default' in node;
}

/**
 * Reads nova.conf's INI text against ferry's schema. [DEFAULT] holds the
 * top-level options, every other section ferry has holds its own.
 *
 *     [DEFAULT] transport_url = rabbit://...     -> values.transport_url
 *     [libvirt] live_migration_downtime = 800    -> values.libvirt.live_migration_downtime = "800"
 *     [DEFAULT] max_concurrent_live_migrations   -> values.compute.max_concurrent_live_migrations (ferry's place for it)
 *     [libvirt] images_type = qcow2              -> ignored "[libvirt] images_type"
 *     [neutron] ...                              -> ignored "[neutron] (n options)"
 *     [libvirt] no_such_option                   -> unknown "libvirt.no_such_option: ..."
 */
export function readNovaConf(text: string, schema: SchemaNode): NovaConf {
  const parsed = parse(text.split(/\r?\n/).map(escapeInlineComments).join('\n')) as Record<string, unknown>;
  const out: NovaConf = { values: {}, ignored: [], unknown: [] };
  for (const [section, body] of Object.entries(parsed)) {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      out.unknown.push(`${section}: outside any section (oslo.config wants it under [DEFAULT])`);
      continue;
    }
    const options = body as Record<string, unknown>;
    const ours = section === 'DEFAULT' ? schema : schema[section];
    if (ours === undefined || isLeaf(ours)) {
      if (NOVA_SECTIONS.has(section)) out.ignored.push(`[${section}] (${Object.keys(options).length} options)`);
      else out.unknown.push(`${section}: no such section in ferry or Nova`);
      continue;
    }
    for (const [key, value] of Object.entries(options)) {
      const dotted = section === 'DEFAULT' ? key : `${section}.${key}`;
      const path = NOVA_ALIASES[`${section}.${key}`] ?? dotted;
      const [head, leaf] = path.includes('.') ? path.split('.') : [null, path];
      const node = head === null ? schema : (schema[head] as SchemaNode);
      if (isLeaf(node[leaf!])) {
        const target = head === null ? out.values : ((out.values[head] ??= {}) as Record<string, unknown>);
        target[leaf!] = value;
      } else if (NOVA_OPTIONS[section]?.has(key)) {
        out.ignored.push(`[${section}] ${key}`);
      } else {
        out.unknown.push(`${dotted}: neither ferry nor Nova has an option ${key} in [${section}]`);
      }
    }
  }
  return out;
}
