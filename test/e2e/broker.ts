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
