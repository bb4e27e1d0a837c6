// A private RabbitMQ vhost per lab run. Queue names come from topic and host
// name (compute.ferry-lab-a, conductor), and every lab's hosts have the same
// names, so labs sharing a vhost would consume each other's requests.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const TRANSPORT_URL = process.env.FERRY_TEST_TRANSPORT_URL ?? 'rabbit://guest:guest@127.0.0.1:5672/';

export interface PrivateBroker {
  vhost: string;
  /** transport_url for agents and clients of this run. */
  transportUrl: string;
  dispose(): Promise<void>;
}

async function rabbitmqctl(args: string[]): Promise<void> {
  await run('rabbitmqctl', ['-q', ...args], { timeout: 60_000 });
}

export async function privateBroker(name: string): Promise<PrivateBroker> {
  const vhost = `${name}-${process.pid}`;
  await rabbitmqctl(['add_vhost', vhost]);
  await rabbitmqctl(['set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*']);
  return {
    vhost,
    transportUrl: `${TRANSPORT_URL.replace(/\/[^/@]*$/, '')}/${encodeURIComponent(vhost)}`,
    dispose: () => rabbitmqctl(['delete_vhost', vhost]).catch(() => {}),
  };
}

/** Closes, from the broker's side, every connection whose client-given name starts with `prefix`; how many it closed. */
export async function closeConnections(prefix: string): Promise<number> {
  // JSON output shows client_properties; close_connection needs the pid in the plain output's syntax.
  const { stdout: json } = await run('rabbitmqctl', ['list_connections', 'name', 'client_properties', '--formatter', 'json']);
  const conns = JSON.parse(json) as { name: string; client_properties: [string, string, unknown][] }[];
  const ours = new Set(
    conns.filter((c) => c.client_properties.some(([k, , v]) => k === 'connection_name' && String(v).startsWith(prefix))).map((c) => c.name),
  );
  const { stdout: plain } = await run('rabbitmqctl', ['list_connections', '-q', '--no-table-headers', 'pid', 'name']);
  const pids = plain.split('\n').map((l) => l.split('\t')).filter(([, name]) => name !== undefined && ours.has(name)).map(([pid]) => pid!);
  for (const pid of pids) await run('rabbitmqctl', ['close_connection', pid, 'ferry test closed it']);
  return pids.length;
}
