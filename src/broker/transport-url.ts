// Parses an oslo transport_url: rabbit://user:pass@h1:5672,user2:pass2@h2:5672/vhost?ssl=1
// Several hosts are tried in order on each (re)connect.

import { parseHostPort } from '../validate/address.js';

export interface BrokerHost {
  hostname: string;
  port: number;
  username: string;
  password: string;
}

export interface TransportUrl {
  hosts: BrokerHost[];
  vhost: string;
  ssl: boolean;
  /** Query options other than ssl, as given. */
  query: Record<string, string>;
}

const TRUE_VALUES = new Set(['1', 'true', 'yes', 'on']);

export function parseTransportUrl(url: string): TransportUrl {
  const m = /^([a-z0-9+]+):\/\/([^/?]*)(?:\/([^?]*))?(?:\?(.*))?$/i.exec(url.trim());
  if (!m) throw new Error(`invalid transport_url: ${redactUrl(url)}`);
  const scheme = m[1]!.toLowerCase();
  if (!['rabbit', 'amqp', 'amqps', 'kombu'].includes(scheme)) {
    throw new Error(`unsupported transport_url scheme: ${scheme}`);
  }
  const query: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(m[4] ?? '')) query[k] = v;
  const ssl = scheme === 'amqps' || TRUE_VALUES.has((query.ssl ?? '').toLowerCase());
  delete query.ssl;
  const defaultPort = ssl ? 5671 : 5672;

  const netloc = m[2] ?? '';
  const hosts = netloc === '' ? [] : netloc.split(',').map((part) => parseHost(part, defaultPort));
  if (hosts.length === 0) hosts.push({ hostname: 'localhost', port: defaultPort, username: 'guest', password: 'guest' });
  // oslo: a host without credentials inherits them from the previous one.
  for (let i = 1; i < hosts.length; i++) {
    const h = hosts[i]!;
    if (h.username === '' && h.password === '') {
      h.username = hosts[i - 1]!.username;
      h.password = hosts[i - 1]!.password;
    }
  }
  if (hosts[0]!.username === '' && hosts[0]!.password === '') {
    hosts[0]!.username = 'guest';
    hosts[0]!.password = 'guest';
  }
  const vhost = m[3] === undefined || m[3] === '' ? '/' : decodeURIComponent(m[3]);
  return { hosts, vhost, ssl, query };
}

function parseHost(part: string, defaultPort: number): BrokerHost {
  let creds = '';
  let hostport = part;
  const at = part.lastIndexOf('@');
  if (at >= 0) {
    creds = part.slice(0, at);
    hostport = part.slice(at + 1);
  }
  let username = '';
  let password = '';
  if (creds !== '') {
    const colon = creds.indexOf(':');
    username = decodeURIComponent(colon >= 0 ? creds.slice(0, colon) : creds);
    password = colon >= 0 ? decodeURIComponent(creds.slice(colon + 1)) : '';
  }
  if (hostport === '') return { hostname: 'localhost', port: defaultPort, username, password };
  const hp = parseHostPort(hostport);
  if (hp === null) throw new Error(`invalid host or port in transport_url: ${hostport}`);
  return { hostname: hp.host, port: hp.port ?? defaultPort, username, password };
}

/** The URL with passwords replaced, for logs. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/|,)([^:@/,]*):([^@/,]*)@/g, '$1$2:***@');
}
