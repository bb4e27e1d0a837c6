// The TCP serial consoles a domain's XML names: Nova's serial console is a
// raw TCP server QEMU binds (<serial type="tcp"><source mode="bind">).
import type { Element } from '@xmldom/xmldom';
import { childElements, findAll, parseXml } from './xml.js';

/** A domain's TCP serial devices and consoles (<serial type="tcp">, <console type="tcp">). */
export function tcpCharDevices(domain: Element): Element[] {
  return [...findAll(domain, 'devices/serial'), ...findAll(domain, 'devices/console')].filter((dev) => dev.getAttribute('type') === 'tcp');
}

/**
 * The ports of a domain's bound TCP serial devices and consoles.
 *
 *   tcpSerialPorts("<domain><devices><serial type='tcp'><source mode='bind' host='10.0.0.5' service='10001'/>...")
 *   // [10001]
 */
export function tcpSerialPorts(xml: string): number[] {
  const ports: number[] = [];
  for (const dev of tcpCharDevices(parseXml(xml).documentElement)) {
    for (const source of childElements(dev, 'source')) {
      const port = Number(source.getAttribute('service'));
      if (source.getAttribute('mode') === 'bind' && Number.isInteger(port) && port > 0) ports.push(port);
    }
  }
  return ports;
}
