import { describe, expect, it } from 'vitest';
import { validate } from '../../src/rpc/schema.js';
import type { Schema } from '../../src/rpc/types.js';

const schema: Schema = {
  type: 'object',
  required: ['instance', 'block_migration'],
  properties: {
    instance: { type: 'object', required: ['uuid'], properties: { uuid: { type: 'string', pattern: /^[0-9a-f-]{36}$/ } } },
    block_migration: { type: 'boolean' },
    dest: { type: 'string', nullable: true },
    ports: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 65535 } },
    speed: { type: 'number', minimum: 0 },
    mode: { type: 'string', enum: ['abort', 'force_complete'] },
    extra: { type: 'any' },
  },
};
const uuid = '8f1a2c3d-0000-4000-8000-000000000001';

describe('validate', () => {
  it('accepts valid args', () => {
    expect(validate(schema, { instance: { uuid }, block_migration: false, dest: null, ports: [5900], speed: 1.5, mode: 'abort', extra: [1] })).toBeNull();
  });
  it.each([
    [{ instance: { uuid: 5 }, block_migration: true }, 'args.instance.uuid: expected string'],
    [{ instance: { uuid: 'x' }, block_migration: true }, 'args.instance.uuid: does not match'],
    [{ instance: {}, block_migration: true }, 'args.instance.uuid: required'],
    [{ instance: { uuid } }, 'args.block_migration: required'],
    [{ instance: { uuid }, block_migration: 'yes' }, 'args.block_migration: expected boolean, got string'],
    [{ instance: null, block_migration: true }, 'args.instance: expected object, got null'],
    [{ instance: { uuid }, block_migration: true, ports: [1, 0] }, 'args.ports[1]: must be >= 1'],
    [{ instance: { uuid }, block_migration: true, ports: [1.5] }, 'args.ports[0]: expected integer, got number'],
    [{ instance: { uuid }, block_migration: true, ports: {} }, 'args.ports: expected array, got object'],
    [{ instance: { uuid }, block_migration: true, speed: -1 }, 'args.speed: must be >= 0'],
    [{ instance: { uuid }, block_migration: true, mode: 'x' }, 'args.mode: expected one of abort, force_complete'],
  ])('names the failing field (%#)', (value, message) => {
    expect(validate(schema, value)).toContain(message);
  });
  it('refuses a non-object at the top', () => {
    expect(validate(schema, [1], 'args')).toBe('args: expected object, got array');
  });
});
