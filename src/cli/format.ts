// Human-readable figures and tables for ferryctl, and its --format choice.

import { stringify } from 'yaml';
import type { MigrationView } from '../nova/migration-view.js';
import { isFinal } from '../record/status.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function bytes(n: number): string {
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v.toFixed(0) : v.toFixed(1)} ${UNITS[u]}`;
}

export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function migrationsTable(views: MigrationView[]): string {
  return table(
    ['MIGRATION', 'INSTANCE', 'SOURCE', 'DEST', 'STATUS', 'PROGRESS', 'MEMORY', 'DISK', 'VERDICT', 'ETA', 'STARTED'],
    views.map((m) => [
      m.uuid,
      m.instance_uuid,
      m.source_compute,
      m.dest_compute,
      m.status,
      `${m.progress}%`,
      `${bytes(m.memory_processed)}/${bytes(m.memory_total)}`,
      m.disk_total > 0 ? `${bytes(m.disk_processed)}/${bytes(m.disk_total)}` : '-',
      m.convergence_verdict ?? '-',
      m.eta_seconds === null ? '-' : duration(m.eta_seconds),
      m.started_at ?? m.created_at,
    ]),
  );
}

/**
 * One line: bar, percent, transferred, remaining, dirty rate, the link's
 * smoothed rate, elapsed, then the predicted time left and a verdict other
 * than converging, once the convergence model has them.
 */
export function progressLine(m: MigrationView, elapsedSeconds: number, width = 30): string {
  const total = m.memory_total + m.disk_total;
  const remaining = m.memory_remaining + m.disk_remaining;
  // The counters are the last sample taken while running: a completed migration is 100% whatever they say.
  const pct = m.status === 'completed' ? 100 : total > 0 ? Math.min(100, Math.max(0, Math.round(((total - remaining) * 100) / total))) : 0;
  const filled = Math.round((pct * width) / 100);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
  const link = m.bandwidth_bytes_per_second === null ? '' : `  link ${bytes(m.bandwidth_bytes_per_second)}/s`;
  const eta = m.eta_seconds === null || isFinal(m.status) ? '' : `  eta ${duration(m.eta_seconds)}`;
  const verdict = m.convergence_verdict && m.convergence_verdict !== 'converging' && !isFinal(m.status) ? `  ${m.convergence_verdict}` : '';
  return `${bar} ${String(pct).padStart(3)}%  ${m.status.padEnd(19)} sent ${bytes(m.memory_processed + m.disk_processed)}  left ${bytes(remaining)}  dirty ${bytes(m.dirty_rate_bytes_per_second)}/s${link}  ${duration(elapsedSeconds)}${eta}${verdict}`;
}

/** ferryctl's output formats, as the openstack client names them. */
export const FORMATS = ['table', 'json', 'yaml'] as const;
export type OutputFormat = (typeof FORMATS)[number];

/** Data as JSON or YAML, or, for `table`, as the command's table shows it. */
export function render(format: OutputFormat, data: unknown, asTable: () => string): string {
  if (format === 'json') return JSON.stringify(data, null, 2);
  if (format === 'yaml') return stringify(data).trimEnd();
  return asTable();
}

/**
 * One migration as FIELD / VALUE rows, every field of the view in its order
 * (the model figures among them): null as "-", lists and objects as JSON.
 *
 *     { uuid: "u1", stalled: null, port_bindings: [] } -> "uuid  u1" / "stalled  -" / "port_bindings  []"
 */
export function showTable(m: MigrationView): string {
  const cell = (v: unknown) => (v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  return table(['FIELD', 'VALUE'], Object.entries(m).map(([k, v]) => [k, cell(v)]));
}

/**
 * The lines `migrations --watch` redraws: one per migration, the instance
 * (first 8 of its uuid) before its progress line.
 */
export function watchLines(views: readonly MigrationView[], nowMs: number): string[] {
  return views.map((m) => `${m.instance_uuid.slice(0, 8)}  ${progressLine(m, (nowMs - Date.parse(m.started_at ?? m.created_at)) / 1000)}`);
}
