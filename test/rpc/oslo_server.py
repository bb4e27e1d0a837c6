"""A real oslo.messaging RPC server for interop tests.

Usage: oslo_server.py URL EXCHANGE TOPIC SERVER
Prints READY once consuming; exits when stdin closes.
"""
import logging
import sys
import threading

import oslo_messaging
from oslo_config import cfg


class Endpoint(object):
    target = oslo_messaging.Target(version='2.3')

    def echo(self, ctxt, **kwargs):
        return {'args': kwargs, 'request_id': ctxt.get('request_id'),
                'user_id': ctxt.get('user_id'), 'seen_token': 'auth_token' in ctxt}

    def fail(self, ctxt, **kwargs):
        raise ValueError('python says no: %s' % kwargs.get('why'))


def main():
    logging.basicConfig(level=logging.ERROR)
    url, exchange, topic, server = sys.argv[1:5]
    conf = cfg.ConfigOpts()
    conf([], project='ferry-interop')
    oslo_messaging.set_transport_defaults(control_exchange=exchange)
    transport = oslo_messaging.get_rpc_transport(conf, url=url)
    target = oslo_messaging.Target(topic=topic, server=server)
    srv = oslo_messaging.get_rpc_server(transport, target, [Endpoint()], executor='threading')
    srv.start()
    print('READY', flush=True)
    done = threading.Event()

    def wait_stdin():
        sys.stdin.read()
        done.set()
    threading.Thread(target=wait_stdin, daemon=True).start()
    done.wait()
    srv.stop()
    srv.wait()
    transport.cleanup()


if __name__ == '__main__':
    main()
