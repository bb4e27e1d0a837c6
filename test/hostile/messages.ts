// Hostile messages for ferryd's compute queue, drawn from a seeded generator
// so a failing run can be replayed: every compute method ferry serves (the
// migration family and the guest's lifecycle) with
// a member's context, wrong types, huge fields and deep nesting, refused
// live_migration casts that each leave a record, broken envelopes and
// caller-given durations no sane client sends.

export const METHODS = [
  'check_can_live_migrate_destination',
  'check_can_live_migrate_source',
  'pre_live_migration',
  'live_migration',
  'post_live_migration_at_destination',
  'rollback_live_migration_at_destination',
  'live_migration_abort',
  'live_migration_force_complete',
  'live_migration_resume',
  'list_migrations',
  'build_and_run_instance',
  'reboot_instance',
  'terminate_instance',
  'rescue_instance',
  'unrescue_instance',
] as const;

export interface HostileMessage {
  kind: string;
  body: Buffer;
  /** the `_msg_id` a final reply must carry, when the message expects one */
  replyTo: string | null;
}

/** mulberry32: a small seeded PRNG, enough to replay a run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
const hex = (rng: Rng, n: number) => Array.from({ length: n }, () => Math.floor(rng() * 16).toString(16)).join('');
const uuid = (rng: Rng) => `${hex(rng, 8)}-${hex(rng, 4)}-4${hex(rng, 3)}-a${hex(rng, 3)}-${hex(rng, 12)}`;

/** Stands for the deep value until the message is text. */
const DEEP = '@deep@';

const ADMIN = { _context_is_admin: true, _context_roles: ['admin'], _context_user_id: 'fuzz-admin', _context_project_id: 'fuzz' };
const MEMBER = { _context_is_admin: false, _context_roles: ['member'], _context_user_id: 'fuzz-member', _context_project_id: 'fuzz' };

function nested(depth: number): unknown {
  let v: unknown = 'bottom';
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { x: v };
  return v;
}

/** A value of the wrong type, or a right type of hostile size. */
function wrongValue(rng: Rng): unknown {
  return pick(rng, [
    () => 42,
    () => -1,
    () => 1e300,
    () => 'x'.repeat(1 + Math.floor(rng() * 300_000)),
    () => '{not json',
    () => [1, 'two', null],
    () => Array.from({ length: 5_000 }, (_, i) => i),
    () => ({ uuid: '../../../etc' }),
    () => ({ uuid: uuid(rng), name: 'n'.repeat(200_000) }),
    () => null,
    () => true,
    () => nested(40),
  ])();
}

const FIELDS = [
  'instance',
  'dest',
  'block_migration',
  'disk',
  'migrate_data',
  'migration',
  'dest_check_data',
  'disk_over_commit',
  'migration_id',
  'instance_uuid',
  'timeout_seconds',
  'on_timeout',
  'destroy_disks',
  'image',
  'reboot_type',
  'keep_disks',
  'rescue_image_ref',
  'rescue_password',
  'clean_shutdown',
];

function inner(method: string, args: Record<string, unknown>, ctx: Record<string, unknown>, msgId: string | null, replyQ: string, extra: Record<string, unknown> = {}) {
  return {
    method,
    args,
    version: '6.0',
    ...ctx,
    ...(msgId ? { _msg_id: msgId, _reply_q: replyQ, _timeout: 60 } : {}),
    _unique_id: msgId ?? `u${Math.random().toString(16).slice(2)}`,
    ...extra,
  };
}

const wrap = (m: Record<string, unknown>) => Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify(m) }));

/** The i-th message of a run: `replyQ` is where the caller's replies go. */
export function hostileMessage(rng: Rng, i: number, replyQ: string, dest: string): HostileMessage {
  const method = pick(rng, METHODS);
  const msgId = `fuzz-${i}-${hex(rng, 8)}`;
  const roll = rng();
  if (roll < 0.2) {
    // A member asks: refused by policy before the args are read.
    const args = Object.fromEntries(FIELDS.filter(() => rng() < 0.3).map((f) => [f, wrongValue(rng)]));
    return { kind: 'member', body: wrap(inner(method, args, MEMBER, msgId, replyQ)), replyTo: msgId };
  }
  if (roll < 0.45) {
    // An admin's live_migration cast for a guest this host does not run: refused, and recorded.
    const args = {
      instance: { uuid: uuid(rng), name: 'i'.repeat(255), display_name: 'd'.repeat(255), host: 'h'.repeat(255) },
      dest: pick(rng, [dest, 'h'.repeat(255), 'dst;touch /tmp/pwned', '127.0.0.22/system?command=/bin/sh']),
      block_migration: rng() < 0.5,
      migration: { uuid: uuid(rng), id: Math.floor(rng() * 1e9) },
      migrate_data: { target_connect_addr: pick(rng, [null, '127.0.0.22', 'x'.repeat(255)]) },
    };
    return { kind: 'refused-cast', body: wrap(inner('live_migration', args, ADMIN, null, replyQ)), replyTo: null };
  }
  if (roll < 0.75) {
    // An admin's call with wrong types and huge fields: refused naming the field.
    const args = Object.fromEntries(FIELDS.filter(() => rng() < 0.4).map((f) => [f, wrongValue(rng)]));
    return { kind: 'wrong-types', body: wrap(inner(method, args, ADMIN, msgId, replyQ)), replyTo: msgId };
  }
  if (roll < 0.85) {
    // Nested thousands of levels deep, in the args or the context; written as text, since JSON.stringify would recurse.
    const depth = 1_000 + Math.floor(rng() * 4_000);
    const m = rng() < 0.5 ? inner(method, { instance: DEEP }, ADMIN, msgId, replyQ) : inner(method, {}, { ...ADMIN, _context_deep: DEEP }, msgId, replyQ);
    const text = JSON.stringify(m).replace(JSON.stringify(DEEP), `${'[{"x":'.repeat(depth)}0${'}]'.repeat(depth)}`);
    return { kind: 'deep', body: Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': text })), replyTo: msgId };
  }
  if (roll < 0.93) {
    // Durations no client sends: answered once, with at most a sane heartbeat.
    const m = inner('list_migrations', {}, ADMIN, msgId, replyQ, { _timeout: pick(rng, [1e300, -5, 0, 'soon', 1e-9, Number.MAX_SAFE_INTEGER]) });
    return { kind: 'timeout', body: wrap(m), replyTo: msgId };
  }
  // Broken envelopes: those that still name a reply queue get a failure there.
  const variant = Math.floor(rng() * 4);
  const m = inner(method, {}, ADMIN, msgId, replyQ);
  if (variant === 0) return { kind: 'envelope', body: Buffer.from(JSON.stringify({ 'oslo.version': '9.0', 'oslo.message': JSON.stringify(m) })), replyTo: msgId };
  if (variant === 1) return { kind: 'envelope', body: Buffer.from(JSON.stringify(m)), replyTo: msgId };
  if (variant === 2) return { kind: 'envelope', body: Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify({ ...m, method: 7 }) })), replyTo: msgId };
  return { kind: 'envelope', body: Buffer.from('{"oslo.version": "2.0", "oslo.message": "{not json'), replyTo: null };
}
