// A port for the TCP serial console of a guest spawned here, as Nova's
// serial_console.acquire_port chooses one: the lowest port of port_range
// that no domain on this host names and that can be bound on the console's
// address. One choice at a time, so two spawns never take the same port.

import { createServer } from 'node:net';
import { tcpSerialPorts } from '../domain/serial-ports.js';
import type { Connection } from '../libvirt/types.js';
import { SocketPortRangeExhaustedException, InvalidInput } from '../nova/errors.js';

export class SerialConsolePorts {
  /** Ports chosen for a guest not yet defined: no domain names them yet. */
  private readonly reserved = new Set<number>();
  private choosing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly libvirt: Connection,
    private readonly range: { min: number; max: number },
  ) {}

  /**
   * Runs `use` with a free port on `host`, held for no one else until `use`
   * ends (by then the domain it defined names the port, or it failed);
   * SocketPortRangeExhaustedException when no port is left.
   */
  async withFreePort<T>(host: string, use: (port: number) => Promise<T>): Promise<T> {
    const chosen = this.choosing.then(() => this.choose(host));
    this.choosing = chosen.catch(() => undefined);
    const port = await chosen;
    try {
      return await use(port);
    } finally {
      this.reserved.delete(port);
    }
  }

  private async choose(host: string): Promise<number> {
    const taken = new Set(this.reserved);
    for (const dom of await this.libvirt.listAllDomains()) {
      const xml = await dom.getXMLDesc().catch(() => null);
      if (xml) for (const p of tcpSerialPorts(xml)) taken.add(p);
    }
    for (let port = this.range.min; port <= this.range.max; port++) {
      if (taken.has(port) || !(await bindable(host, port))) continue;
      this.reserved.add(port);
      return port;
    }
    throw new SocketPortRangeExhaustedException(host, `${this.range.min}:${this.range.max}`);
  }
}

/** Whether a TCP server can listen on host:port now; an address this host does not have is a configuration error, named. */
function bindable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRNOTAVAIL') reject(new InvalidInput(`serial_console.proxyclient_address: ${host} is not an address of this host`));
      else resolve(false);
    });
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}
