import { describe, expect, it } from 'vitest';
import { NoSuchMethod, RpcError } from '../../src/rpc/errors.js';
import { deserializeFailure, serializeFailure } from '../../src/rpc/failure.js';

describe('failure serialization', () => {
  it('keeps class, module and kwargs of an RpcError', () => {
    const f = JSON.parse(serializeFailure(new RpcError('MigrationError', 'nova.exception', 'boom', { reason: 'x' })));
    expect(f).toMatchObject({ class: 'MigrationError', module: 'nova.exception', message: 'boom', args: [], kwargs: { reason: 'x' } });
    expect(Array.isArray(f.tb)).toBe(true);
  });

  it('sends other errors as builtins with the message as the only arg', () => {
    const f = JSON.parse(serializeFailure(new TypeError('bad type')));
    expect(f).toMatchObject({ class: 'TypeError', module: 'builtins', message: 'bad type', args: ['bad type'], kwargs: {} });
    expect(JSON.parse(serializeFailure('text')).class).toBe('Error');
  });

  it('strips _Remote suffixes like oslo', () => {
    const f = JSON.parse(serializeFailure(new RpcError('Foo_Remote', 'nova.exception_Remote', 'm')));
    expect(f.class).toBe('Foo');
    expect(f.module).toBe('nova.exception');
  });

  it('round-trips into an RpcError', () => {
    const e = deserializeFailure(serializeFailure(new NoSuchMethod('frob')));
    expect(e).toBeInstanceOf(RpcError);
    expect(e.name).toBe('NoSuchMethod');
    expect(e.module).toBe('oslo_messaging.rpc.dispatcher');
    expect(e.message).toBe('Endpoint does not support RPC method frob');
    expect(e.kwargs).toEqual({ method: 'frob' });
  });

  it('reads a Python-made failure and survives garbage', () => {
    const py = JSON.stringify({ class: 'ValueError', module: 'builtins', message: 'nope', tb: ['Traceback\n'], args: ['nope'], kwargs: {} });
    expect(deserializeFailure(py)).toMatchObject({ name: 'ValueError', module: 'builtins', message: 'nope' });
    expect(deserializeFailure('{not json').name).toBe('RemoteError');
    expect(deserializeFailure(42).name).toBe('RemoteError');
  });
});
