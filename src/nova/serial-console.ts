// Ports for the TCP serial consoles of guests on this host, as Nova's
// serial_console.acquire_port chooses them: the lowest port of port_range
// that no domain here names, none is held for, and can be bound on the
// console's address. One choice at a time, so two never take the same port.
// A spawn holds its port until its domain is defined; a destination holds
// the ports of an incoming guest from pre_live_migration until the guest
// arrived or was rolled back (held in memory: a restart forgets them, and
// the domains then name what is taken).

import { createServer } from 'node:net';
import type { FerryConfig } from '../config/index.js';
import { parsePortRange } from '../config/schema.js';
import { tcpSerialPorts } from '../domain/serial-ports.js';
import type { Connection } from '../libvirt/types.js';
import { InvalidInput, SocketPortRangeExhaustedException } from './errors.js';

/** Serial ports of a guest ferry spawns: console.log on the first, the TCP console on the second (destination ports are indexed by serial port, as Nova's serial_listen_ports). */
export const SERIAL_PORTS_PER_GUEST = 2;

/** Where this host's consoles listen: proxyclient_address, or Nova's default 127.0.0.1 when it is null. */
export const consoleListenAddress = (config: Pick<FerryConfig, 'serial_console'>): string => config.serial_console.proxyclient_address ?? '127.0.0.1';

export class SerialConsolePorts {
  /** Ports chosen and not yet named by a domain here. */
  private readonly reserved = new Set<number>();
  /** Incoming guests' ports, by instance uuid. */
  private readonly held = new Map<string, number[]>();
  private choosing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly libvirt: Connection,
    private readonly range: { min: number; max: number },
  ) {}

  /** The host's ports, from [serial_console] port_range (the schema checked it). */
  static fromConfig(libvirt: Connection, config: Pick<FerryConfig, 'serial_console'>): SerialConsolePorts {
    return new SerialConsolePorts(libvirt, parsePortRange(config.serial_console.port_range)!);
  }

  /**
   * Runs `use` with a free port on `host`, held for no one else until `use`
   * ends (by then the domain it defined names the port, or it failed);
   * SocketPortRangeExhaustedException when no port is left.
   */
  async withFreePort<T>(host: string, use: (port: number) => Promise<T>): Promise<T> {
    const [port] = await this.choose(host, 1);
    try {
      return await use(port!);
    } finally {
      this.reserved.delete(port!);
    }
  }

  /** `count` free ports on `host` held for the incoming guest `uuid` (the same ones when asked again) until released. */
  async holdFor(uuid: string, host: string, count: number): Promise<number[]> {
    const had = this.held.get(uuid);
    if (had) return had;
    const ports = await this.choose(host, count);
    this.held.set(uuid, ports);
    return ports;
  }

  /** The incoming guest `uuid` arrived (its domain names its ports now) or went: its ports are free to choose. */
  release(uuid: string): void {
    for (const p of this.held.get(uuid) ?? []) this.reserved.delete(p);
    this.held.delete(uuid);
  }

  private choose(host: string, count: number): Promise<number[]> {
    const chosen = this.choosing.then(() => this.chooseNow(host, count));
    this.choosing = chosen.catch(() => undefined);
    return chosen;
  }

  private async chooseNow(host: string, count: number): Promise<number[]> {
    const taken = new Set(this.reserved);
    for (const dom of await this.libvirt.listAllDomains()) {
      const xml = await dom.getXMLDesc().catch(() => null);
      if (xml) for (const p of tcpSerialPorts(xml)) taken.add(p);
    }
    const ports: number[] = [];
    for (let port = this.range.min; port <= this.range.max && ports.length < count; port++) {
      if (!taken.has(port) && (await bindable(host, port))) ports.push(port);
    }
    if (ports.length < count) throw new SocketPortRangeExhaustedException(host, `${this.range.min}:${this.range.max}`);
    for (const p of ports) this.reserved.add(p);
    return ports;
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
