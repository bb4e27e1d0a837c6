"""A real oslo.messaging RPC client for interop tests and the latency bench.

Usage: oslo_client.py URL EXCHANGE TOPIC SERVER scenario
       oslo_client.py URL EXCHANGE TOPIC SERVER bench COUNT
Prints one JSON object per line; the last line is {"reply_q": ...}.
"""
import json
import logging
import sys
import time

import oslo_messaging
from oslo_config import cfg

CTX = {'request_id': 'req-python-1', 'user_id': 'py-user', 'project_id': 'py-project',
       'roles': ['member'], 'is_admin': False, 'auth_token': 'py-secret-token'}


def out(**kw):
    print(json.dumps(kw), flush=True)


def describe(exc):
    return {'type': type(exc).__name__, 'module': type(exc).__module__,
            'exc_type': getattr(exc, 'exc_type', None), 'text': str(exc).split('\n')[0]}


def scenario(client):
    out(step='call', result=client.prepare(version='6.0').call(CTX, 'echo', text='hi', n=3))
    client.prepare(version='6.0').cast(CTX, 'record', text='cast-from-python')
    out(step='cast', result='sent')
    for step, method, kw, version in (('fail_builtin', 'fail_value', {}, '6.0'),
                                      ('fail_nova', 'fail_nova', {}, '6.0'),
                                      ('no_method', 'nope', {}, '6.0'),
                                      ('bad_version', 'echo', {}, '7.0'),
                                      ('bad_args', 'echo', {'text': 5}, '6.0')):
        try:
            client.prepare(version=version).call(CTX, method, **kw)
            out(step=step, error=None)
        except Exception as exc:  # noqa
            out(step=step, error=describe(exc))
    res = client.prepare(version='6.0', timeout=30, call_monitor_timeout=2).call(CTX, 'slow', seconds=3)
    out(step='monitored', result=res)


def bench(client, count):
    c = client.prepare(version='6.0', timeout=30)
    c.call(CTX, 'noop')  # warm up: reply queue, connections
    lat = []
    t0 = time.perf_counter()
    for _ in range(count):
        s = time.perf_counter()
        c.call(CTX, 'noop')
        lat.append((time.perf_counter() - s) * 1000.0)
    total = time.perf_counter() - t0
    out(step='bench', count=count, seconds=total, latencies_ms=lat)


def main():
    logging.basicConfig(level=logging.CRITICAL)
    url, exchange, topic, server, mode = sys.argv[1:6]
    conf = cfg.ConfigOpts()
    conf([], project='ferry-interop')
    # oslo only registers the metrics options on the global CONF.
    from oslo_messaging._metrics import client as metrics
    conf.register_opts(metrics.oslo_messaging_metrics, group='oslo_messaging_metrics')
    oslo_messaging.set_transport_defaults(control_exchange=exchange)
    transport = oslo_messaging.get_rpc_transport(conf, url=url)
    target = oslo_messaging.Target(topic=topic, server=server, version='6.0')
    client = oslo_messaging.get_rpc_client(transport, target, timeout=20)
    try:
        if mode == 'scenario':
            scenario(client)
        else:
            bench(client, int(sys.argv[6]))
    finally:
        out(reply_q=transport._driver._reply_q)
        transport.cleanup()


if __name__ == '__main__':
    main()
