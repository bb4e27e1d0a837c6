// The destination domain XML (Nova: libvirt/migration.py get_updated_guest_xml),
// limited to what ferry supports: graphics listen addresses, TCP serial
// consoles and block volumes. Everything not rewritten keeps its bytes.
import {
  childElements,
  createElement,
  findAll,
  firstChild,
  getAttr,
  hasAttr,
  parseXml,
  removeAttr,
  removeChild,
  rootElement,
  serializeXml,
  setAttr,
  textContent,
  type XmlElement,
} from './xml.js';

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

export interface DestinationXmlOptions {
  graphicsListen?: { vnc?: string | null; spice?: string | null };
  serialListenAddr?: string | null;
  /** destination ports by serial target port index (Nova's serial_listen_ports) */
  serialListenPorts?: readonly number[];
  volumes?: readonly DestinationVolume[];
}

export function destinationXml(migratableXml: string, opts: DestinationXmlOptions): string {
  const doc = parseXml(migratableXml);
  const domain = rootElement(doc);
  const listen = graphicsListenAddrs(opts.graphicsListen ?? {});
  if (listen) updateGraphics(domain, listen);
  if (opts.serialListenAddr) updateSerial(domain, opts.serialListenAddr, opts.serialListenPorts ?? []);
  if (opts.volumes?.length) updateVolumes(domain, opts.volumes);
  return serializeXml(doc);
}

function updateGraphics(domain: XmlElement, addrs: GraphicsListenAddrs): void {
  for (const gr of findAll(domain, 'devices/graphics')) {
    const type = getAttr(gr, 'type');
    if (type !== 'vnc' && type !== 'spice') continue;
    const addr = addrs[type];
    if (addr === null) continue;
    if (hasAttr(gr, 'listen')) setAttr(gr, 'listen', addr);
    for (const l of childElements(gr, 'listen')) {
      // type='network' or 'socket' listens have no address to move.
      const lt = getAttr(l, 'type');
      if (lt === undefined || lt === 'address') setAttr(l, 'address', addr);
    }
  }
}

function updateSerial(domain: XmlElement, addr: string, ports: readonly number[]): void {
  const devices = [...findAll(domain, 'devices/serial'), ...findAll(domain, 'devices/console')];
  for (const dev of devices) {
    if (getAttr(dev, 'type') !== 'tcp') continue;
    const target = firstChild(dev, 'target');
    for (const source of childElements(dev, 'source')) {
      if (hasAttr(source, 'host')) setAttr(source, 'host', addr);
      const portIndex = target ? Number(getAttr(target, 'port')) : NaN;
      // Older sources may not send ports; keep the current one then.
      if (hasAttr(source, 'service') && Number.isInteger(portIndex) && portIndex >= 0 && portIndex < ports.length) {
        setAttr(source, 'service', String(ports[portIndex]));
      }
    }
  }
}

const NON_BLOCK_SOURCE_ATTRS = ['file', 'protocol', 'name', 'pool', 'volume', 'dir', 'mode', 'index', 'tls'];

function updateVolumes(domain: XmlElement, volumes: readonly DestinationVolume[]): void {
  const bySerial = new Map(volumes.map((v) => [v.serial, v]));
  for (const disk of findAll(domain, 'devices/disk')) {
    const serialEl = firstChild(disk, 'serial');
    const vol = serialEl && bySerial.get(textContent(serialEl).trim());
    if (!vol) continue;
    setAttr(disk, 'type', 'block');
    const source = firstChild(disk, 'source');
    if (source) {
      // Keep children such as <seclabel>, but not network hosts/auth.
      for (const a of NON_BLOCK_SOURCE_ATTRS) removeAttr(source, a);
      for (const child of childElements(source)) if (child.name === 'host' || child.name === 'auth') removeChild(source, child);
      if (source.children.every((c) => c.type === 'text' && /^\s*$/.test(c.raw))) {
        source.children = [];
        source.selfClosing = true;
      }
      setAttr(source, 'dev', vol.path);
    } else {
      insertBefore(disk, createElement('source', { dev: vol.path }), firstChild(disk, 'target'));
    }
    for (const auth of childElements(disk, 'auth')) removeChild(disk, auth);
    if (vol.dev) {
      const target = firstChild(disk, 'target');
      if (target) setAttr(target, 'dev', vol.dev);
    }
  }
}

/** Inserts `node` before `ref` (or last), indented like `ref`. */
function insertBefore(parent: XmlElement, node: XmlElement, ref: XmlElement | undefined): void {
  const idx = ref ? parent.children.indexOf(ref) : parent.children.length;
  const prev = parent.children[idx - 1];
  const indent = ref && prev?.type === 'text' && /^\s+$/.test(prev.raw) ? [{ type: 'text' as const, raw: prev.raw }] : [];
  parent.children.splice(idx, 0, node, ...indent);
}
