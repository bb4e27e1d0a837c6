// RPC args: each method's zod schema, and the one place a failed parse is
// worded for the caller ("args.instance.uuid: expected string, got integer").
import { z } from 'zod';
import { ArgsTypeError } from './errors.js';
import type { RequestContext, RpcEndpoint, RpcMethod } from './types.js';

/** A JSON object: not null, not an array. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Pairs a schema with its handler so the handler's args are the schema's output type. */
export function rpcMethod<A>(args: z.ZodType<A>, handler: (ctx: RequestContext, args: A) => Promise<unknown>): RpcMethod<A> {
  return { args, handler };
}

/**
 * Parses `raw` with the method's schema. On failure throws the error of the
 * endpoint that owns the method (its `invalidArgs`), else ArgsTypeError.
 */
export function parseArgs<A>(endpoint: RpcEndpoint, method: RpcMethod<A>, raw: unknown): A {
  const parsed = method.args.safeParse(raw, { error: describeIssue });
  if (parsed.success) return parsed.data;
  const problem = argsProblem(parsed.error);
  throw endpoint.invalidArgs ? endpoint.invalidArgs(problem) : new ArgsTypeError(problem);
}

/** The first issue as "args<path>: <what is wrong>". */
export function argsProblem(error: z.ZodError, root = 'args'): string {
  const issue = error.issues[0];
  if (!issue) return `${root}: invalid`;
  return `${root}${pathText(issue.path)}: ${issue.message}`;
}

/**
 * zod error map giving ferry's wording without the path (argsProblem adds
 * it). Issues it does not know keep zod's own message.
 */
export function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  // JSON has no undefined: an undefined input is a missing key.
  if (issue.input === undefined && ['invalid_type', 'invalid_union', 'invalid_value'].includes(issue.code)) return 'required';
  switch (issue.code) {
    case 'invalid_type':
      return mismatch(issue.expected === 'int' ? 'integer' : issue.expected, issue.input);
    case 'invalid_value':
      // An enum of strings given a non-string says so, as for any string.
      if (issue.values.every((v) => typeof v === 'string') && typeof issue.input !== 'string') return mismatch('string', issue.input);
      return `expected one of ${issue.values.map(String).join(', ')}`;
    case 'invalid_format':
      return issue.format === 'regex' && issue.pattern !== undefined ? `does not match ${issue.pattern}` : undefined;
    case 'too_small':
      if (issue.origin !== 'number' && issue.origin !== 'int') return undefined;
      return `must be ${issue.inclusive === false ? '>' : '>='} ${issue.minimum}`;
    case 'too_big':
      if (issue.origin !== 'number' && issue.origin !== 'int') return undefined;
      return `must be ${issue.inclusive === false ? '<' : '<='} ${issue.maximum}`;
    default:
      return undefined;
  }
}

/**
 * An error function for schemas whose failure is best told as a whole
 * (e.g. "an integer id or a migration uuid") rather than by the branch that
 * failed; a missing key still reads "required".
 */
export function failsAs(why: string): (issue: z.core.$ZodRawIssue) => string | undefined {
  return (issue) => (issue.input === undefined ? undefined : why);
}

function pathText(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
}

function mismatch(expected: string, value: unknown): string {
  return `expected ${expected}, got ${describe(value)}`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}
