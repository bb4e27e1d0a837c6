// The TCP serial consoles a domain's XML names: Nova's serial console is a
// raw TCP server QEMU binds (<serial type="tcp"><source mode="bind">).
import { childElements, findAll, parseXml } from './xml.js';

/**
 * The ports of a domain's bound TCP serial devices and consoles.
 *
 *   tcpSerialPorts("<domain><devices><serial type='tcp'><source mode='bind' host='10.0.0.5' service='10001'/>...")
 *   // [10001]
 */
export function tcpSerialPorts(xml: string): number[] {
  const domain = parseXml(xml).documentElement;
  const ports: number[] = [];
  for (const dev of [...findAll(domain, 'devices/serial'), ...findAll(domain, 'devices/console')]) {
    if (dev.getAttribute('type') !== 'tcp') continue;
    for (const source of childElements(dev, 'source')) {
      const port = Number(source.getAttribute('service'));
      if (source.getAttribute('mode') === 'bind' && Number.isInteger(port) && port > 0) ports.push(port);
    }
  }
  return ports;
}
