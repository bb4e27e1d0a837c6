// The destination domain XML (Nova: libvirt/migration.py get_updated_guest_xml),
// limited to what ferry supports: graphics listen addresses, TCP serial
// consoles, block volumes, local disks that arrive whole (no backing chain
// there), and interfaces onto the bridges of their destination bindings.
// Everything else is left as it was.
import { Node, type Element } from '@xmldom/xmldom';
import { tcpCharDevices } from './serial-ports.js';
import { childElements, findAll, firstChild, parseXml, serializeXml, textContent, type XmlDocument } from './xml.js';

export interface GraphicsListenAddrs {
  vnc: string | null;
  spice: string | null;
}

/** Nova's graphics_listen_addrs: null when neither address is known. */
export function graphicsListenAddrs(addrs: { vnc?: string | null; spice?: string | null }): GraphicsListenAddrs | null {
  const vnc = addrs.vnc ?? null;
  const spice = addrs.spice ?? null;
  return vnc === null && spice === null ? null : { vnc, spice };
}

export interface DestinationVolume {
  /** <serial> of the disk, the Cinder volume id */
  serial: string;
  /** target dev on the destination */
  dev?: string;
  /** block device path of the volume on the destination */
  path: string;
}

/** A port's interface on the destination, from the binding the destination plugged. */
export interface DestinationInterface {
  /** The guest's <mac address>, matched case-insensitively. */
  mac: string;
  vifType: 'bridge' | 'ovs';
  bridge: string;
  /** Open vSwitch's interface id for the port (Neutron's port id). */
  portId: string;
  /** The network's MTU there; written only where the interface had an <mtu> already. */
  mtu: number | null;
}

export interface DestinationXmlOptions {
  graphicsListen?: { vnc?: string | null; spice?: string | null };
  serialListenAddr?: string | null;
  /** The destination's ports for TCP serial consoles, by serial port (<target port>); a port beyond the list keeps its own. */
  serialListenPorts?: readonly number[];
  volumes?: readonly DestinationVolume[];
  /** Target devs of local disks copied whole into flat images: on the destination they have no backing chain. */
  flatDisks?: readonly string[];
  interfaces?: readonly DestinationInterface[];
}

export function destinationXml(migratableXml: string, opts: DestinationXmlOptions): string {
  const doc = parseXml(migratableXml);
  const domain = doc.documentElement;
  const listen = graphicsListenAddrs(opts.graphicsListen ?? {});
  if (listen) updateGraphics(domain, listen);
  if (opts.serialListenAddr || opts.serialListenPorts?.length) updateSerial(domain, opts.serialListenAddr ?? null, opts.serialListenPorts ?? []);
  if (opts.volumes?.length) updateVolumes(doc, opts.volumes);
  if (opts.flatDisks?.length) flattenDisks(doc, opts.flatDisks);
  if (opts.interfaces?.length) updateInterfaces(doc, opts.interfaces);
  return serializeXml(doc);
}

/**
 * Each interface whose MAC a binding names is put on that binding's bridge
 * (Nova matches by MAC and rebuilds from the destination VIF): type bridge,
 * a <source bridge> alone, Open vSwitch's <virtualport> for an ovs port and
 * none for a Linux bridge. Its PCI <address>, model, target and the rest
 * stay; an <mtu> stays where there was one, with the destination network's
 * size when the binding gives it.
 */
function updateInterfaces(doc: XmlDocument, interfaces: readonly DestinationInterface[]): void {
  const byMac = new Map(interfaces.map((i) => [i.mac.toLowerCase(), i]));
  for (const iface of findAll(doc.documentElement, 'devices/interface')) {
    const dest = byMac.get(firstChild(iface, 'mac')?.getAttribute('address')?.toLowerCase() ?? '');
    if (!dest) continue;
    iface.setAttribute('type', 'bridge');
    let source = firstChild(iface, 'source');
    if (source) {
      for (const a of [...source.attributes]) source.removeAttribute(a.name);
      while (source.firstChild) source.removeChild(source.firstChild);
    } else {
      source = doc.createElement('source');
      insertIndented(iface, source, nextElement(firstChild(iface, 'mac')));
    }
    source.setAttribute('bridge', dest.bridge);
    for (const vp of childElements(iface, 'virtualport')) removeIndented(iface, vp);
    if (dest.vifType === 'ovs') {
      const vp = doc.createElement('virtualport');
      vp.setAttribute('type', 'openvswitch');
      const params = doc.createElement('parameters');
      params.setAttribute('interfaceid', dest.portId);
      vp.appendChild(params);
      insertIndented(iface, vp, nextElement(source));
    }
    const mtu = firstChild(iface, 'mtu');
    if (mtu && dest.mtu !== null) mtu.setAttribute('size', String(dest.mtu));
  }
}

/** An empty <backingStore/> is libvirt's "this image has no backing": the source's chain is not there. */
function flattenDisks(doc: XmlDocument, devs: readonly string[]): void {
  const flat = new Set(devs);
  for (const disk of findAll(doc.documentElement, 'devices/disk')) {
    const dev = firstChild(disk, 'target')?.getAttribute('dev');
    if (!dev || !flat.has(dev)) continue;
    for (const old of childElements(disk, 'backingStore')) disk.removeChild(old);
    const source = firstChild(disk, 'source');
    const empty = doc.createElement('backingStore');
    if (source?.nextSibling) disk.insertBefore(empty, source.nextSibling);
    else disk.appendChild(empty);
  }
}

function updateGraphics(domain: Element, addrs: GraphicsListenAddrs): void {
  for (const gr of findAll(domain, 'devices/graphics')) {
    const type = gr.getAttribute('type');
    if (type !== 'vnc' && type !== 'spice') continue;
    const addr = addrs[type];
    if (addr === null) continue;
    if (gr.hasAttribute('listen')) gr.setAttribute('listen', addr);
    for (const l of childElements(gr, 'listen')) {
      // type='network' or 'socket' listens have no address to move.
      const lt = l.getAttribute('type');
      if (lt === null || lt === 'address') l.setAttribute('address', addr);
    }
  }
}

// As Nova's migration.py does: the host moves to the destination's address,
// and a console bound on a port takes the destination's port for its serial
// port number (its <target port>); a number beyond the list keeps its port.
function updateSerial(domain: Element, addr: string | null, ports: readonly number[]): void {
  for (const dev of tcpCharDevices(domain)) {
    const index = Number(firstChild(dev, 'target')?.getAttribute('port'));
    for (const source of childElements(dev, 'source')) {
      if (addr && source.hasAttribute('host')) source.setAttribute('host', addr);
      const port = Number.isInteger(index) ? ports[index] : undefined;
      if (port !== undefined && source.hasAttribute('service')) source.setAttribute('service', String(port));
    }
  }
}

const NON_BLOCK_SOURCE_ATTRS = ['file', 'protocol', 'name', 'pool', 'volume', 'dir', 'mode', 'index', 'tls'];

function updateVolumes(doc: XmlDocument, volumes: readonly DestinationVolume[]): void {
  const bySerial = new Map(volumes.map((v) => [v.serial, v]));
  for (const disk of findAll(doc.documentElement, 'devices/disk')) {
    const serialEl = firstChild(disk, 'serial');
    const vol = serialEl && bySerial.get(textContent(serialEl).trim());
    if (!vol) continue;
    disk.setAttribute('type', 'block');
    const source = firstChild(disk, 'source');
    if (source) {
      // Keep children such as <seclabel>, but not network hosts/auth.
      for (const a of NON_BLOCK_SOURCE_ATTRS) source.removeAttribute(a);
      for (const child of [...childElements(source, 'host'), ...childElements(source, 'auth')]) removeIndented(source, child);
      // Left with only indentation, <source> is written as <source .../>.
      if ([...source.childNodes].every(isBlank)) while (source.firstChild) source.removeChild(source.firstChild);
      source.setAttribute('dev', vol.path);
    } else {
      const created = doc.createElement('source');
      created.setAttribute('dev', vol.path);
      insertIndented(disk, created, firstChild(disk, 'target'));
    }
    for (const auth of childElements(disk, 'auth')) removeIndented(disk, auth);
    if (vol.dev) {
      const target = firstChild(disk, 'target');
      if (target) target.setAttribute('dev', vol.dev);
    }
  }
}

/** The element after `el` among its parent's children, if any. */
function nextElement(el: Element | undefined): Element | undefined {
  for (let n = el?.nextSibling; n; n = n.nextSibling) if (n.nodeType === Node.ELEMENT_NODE) return n as Element;
  return undefined;
}

function isBlank(node: Node): boolean {
  return node.nodeType === Node.TEXT_NODE && /^\s*$/.test(node.nodeValue ?? '');
}

/** Removes `child` with the indentation before it, so no blank line is left. */
function removeIndented(parent: Element, child: Element): void {
  const prev = child.previousSibling;
  if (prev && isBlank(prev)) parent.removeChild(prev);
  parent.removeChild(child);
}

/** Inserts `child` before `ref` (or last), on its own line indented like `ref`. */
function insertIndented(parent: Element, child: Element, ref: Element | undefined): void {
  const indent = ref?.previousSibling;
  parent.insertBefore(child, ref ?? null);
  if (ref && indent && isBlank(indent)) parent.insertBefore(indent.cloneNode(), ref);
}
