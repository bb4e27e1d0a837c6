// Validates RPC args against the small Schema language in types.ts.
import type { Schema } from './types.js';

/** Returns null when valid, else the first problem as "path: expected ...". */
export function validate(schema: Schema, value: unknown, path = 'args'): string | null {
  if (schema.type === 'any') return null;
  if (value === null || value === undefined) {
    if ('nullable' in schema && schema.nullable && value === null) return null;
    return `${path}: expected ${schema.type}, got ${value === null ? 'null' : 'nothing'}`;
  }
  switch (schema.type) {
    case 'string':
      if (typeof value !== 'string') return mismatch(path, 'string', value);
      if (schema.enum && !schema.enum.includes(value)) return `${path}: expected one of ${schema.enum.join(', ')}`;
      if (schema.pattern && !schema.pattern.test(value)) return `${path}: does not match ${schema.pattern}`;
      return null;
    case 'integer':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return mismatch(path, schema.type, value);
      if (schema.type === 'integer' && !Number.isInteger(value)) return mismatch(path, 'integer', value);
      if (schema.minimum !== undefined && value < schema.minimum) return `${path}: must be >= ${schema.minimum}`;
      if (schema.type === 'integer' && schema.maximum !== undefined && value > schema.maximum) {
        return `${path}: must be <= ${schema.maximum}`;
      }
      return null;
    }
    case 'boolean':
      return typeof value === 'boolean' ? null : mismatch(path, 'boolean', value);
    case 'array': {
      if (!Array.isArray(value)) return mismatch(path, 'array', value);
      for (let i = 0; i < value.length; i++) {
        const err = validate(schema.items, value[i], `${path}[${i}]`);
        if (err) return err;
      }
      return null;
    }
    case 'object': {
      if (!isPlainObject(value)) return mismatch(path, 'object', value);
      for (const key of schema.required ?? []) {
        if (!(key in value)) return `${path}.${key}: required`;
      }
      for (const [key, sub] of Object.entries(schema.properties ?? {})) {
        if (!(key in value)) continue;
        const err = validate(sub, value[key], `${path}.${key}`);
        if (err) return err;
      }
      return null;
    }
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function mismatch(path: string, expected: string, value: unknown): string {
  return `${path}: expected ${expected}, got ${describe(value)}`;
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number' && !Number.isInteger(value)) return 'number';
  if (typeof value === 'number') return 'integer';
  return typeof value;
}
