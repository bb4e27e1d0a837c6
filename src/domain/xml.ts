// A small XML tree for libvirt domain XML: parse, edit, serialize back.
// Unedited nodes are written back from their original bytes, so a rewrite
// changes only what it touches. Not a validating parser: no DTDs, no
// namespaces processing (prefixed names are kept as plain names).

export interface XmlAttr {
  name: string;
  /** decoded value */
  value: string;
  quote: '"' | "'";
  /** original `name='value'` text; dropped when the value changes */
  raw?: string;
}

export interface XmlElement {
  type: 'element';
  name: string;
  attrs: XmlAttr[];
  children: XmlNode[];
  /** written as <name/> when it has no children */
  selfClosing: boolean;
  /** original start tag; dropped when an attribute changes */
  rawOpen?: string;
  rawClose?: string;
}

export interface XmlText {
  type: 'text';
  /** as written, entities undecoded */
  raw: string;
}

export interface XmlMisc {
  type: 'comment' | 'cdata' | 'pi' | 'doctype';
  raw: string;
}

export type XmlNode = XmlElement | XmlText | XmlMisc;

export interface XmlDocument {
  type: 'document';
  children: XmlNode[];
}

export type XmlParent = XmlDocument | XmlElement;

export class XmlError extends Error {
  constructor(message: string, readonly offset: number) {
    super(`${message} at offset ${offset}`);
    this.name = 'XmlError';
  }
}

// ---------------------------------------------------------------- entities

const NAMED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

export function decodeEntities(raw: string): string {
  if (!raw.includes('&')) return raw;
  return raw.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[A-Za-z]+);/g, (whole, ref: string) => {
    if (ref[0] === '#') {
      const cp = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return cp <= 0x10ffff ? String.fromCodePoint(cp) : whole;
    }
    return NAMED[ref] ?? whole;
  });
}

/** Escapes as libvirt does for attribute values (all five predefined entities). */
export function escapeAttr(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

export function escapeText(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

// ---------------------------------------------------------------- parse

const NAME_START = /[A-Za-z_:\u00C0-\uFFFF]/;
const NAME_CHAR = /[A-Za-z0-9_:.\-\u00B7\u00C0-\uFFFF]/;
const WS = /[ \t\r\n]/;

export function parseXml(src: string): XmlDocument {
  const doc: XmlDocument = { type: 'document', children: [] };
  const stack: XmlParent[] = [doc];
  const top = (): XmlParent => stack[stack.length - 1]!;
  let i = 0;

  const until = (marker: string, from: number, what: string): number => {
    const end = src.indexOf(marker, from);
    if (end < 0) throw new XmlError(`unterminated ${what}`, i);
    return end + marker.length;
  };

  const readName = (at: number): number => {
    if (!NAME_START.test(src[at] ?? '')) throw new XmlError('expected a name', at);
    let j = at + 1;
    while (j < src.length && NAME_CHAR.test(src[j]!)) j++;
    return j;
  };

  while (i < src.length) {
    if (src[i] !== '<') {
      const next = src.indexOf('<', i);
      const end = next < 0 ? src.length : next;
      top().children.push({ type: 'text', raw: src.slice(i, end) });
      i = end;
      continue;
    }
    if (src.startsWith('<!--', i)) {
      const end = until('-->', i + 4, 'comment');
      top().children.push({ type: 'comment', raw: src.slice(i, end) });
      i = end;
    } else if (src.startsWith('<![CDATA[', i)) {
      const end = until(']]>', i + 9, 'CDATA section');
      top().children.push({ type: 'cdata', raw: src.slice(i, end) });
      i = end;
    } else if (src.startsWith('<?', i)) {
      const end = until('?>', i + 2, 'processing instruction');
      top().children.push({ type: 'pi', raw: src.slice(i, end) });
      i = end;
    } else if (src.startsWith('<!', i)) {
      const bracket = src.indexOf('[', i);
      const close = src.indexOf('>', i);
      const end = bracket >= 0 && bracket < close ? until(']>', bracket, 'DOCTYPE') : until('>', i, 'DOCTYPE');
      top().children.push({ type: 'doctype', raw: src.slice(i, end) });
      i = end;
    } else if (src[i + 1] === '/') {
      const nameEnd = readName(i + 2);
      const name = src.slice(i + 2, nameEnd);
      let j = nameEnd;
      while (WS.test(src[j] ?? '')) j++;
      if (src[j] !== '>') throw new XmlError(`malformed end tag </${name}>`, i);
      const open = top();
      if (open.type !== 'element' || open.name !== name) {
        throw new XmlError(`unexpected </${name}>${open.type === 'element' ? `, expected </${open.name}>` : ''}`, i);
      }
      open.rawClose = src.slice(i, j + 1);
      stack.pop();
      i = j + 1;
    } else {
      i = parseStartTag(i);
    }
  }
  if (stack.length > 1) {
    const open = top() as XmlElement;
    throw new XmlError(`unclosed element <${open.name}>`, src.length);
  }
  return doc;

  function parseStartTag(start: number): number {
    const nameEnd = readName(start + 1);
    const el: XmlElement = { type: 'element', name: src.slice(start + 1, nameEnd), attrs: [], children: [], selfClosing: false };
    let j = nameEnd;
    for (;;) {
      const before = j;
      while (WS.test(src[j] ?? '')) j++;
      if (j >= src.length) throw new XmlError(`unterminated start tag <${el.name}>`, start);
      if (src.startsWith('/>', j)) {
        el.selfClosing = true;
        j += 2;
        break;
      }
      if (src[j] === '>') {
        j += 1;
        break;
      }
      if (j === before) throw new XmlError(`expected whitespace before an attribute in <${el.name}>`, j);
      const attrStart = j;
      const attrNameEnd = readName(j);
      const name = src.slice(j, attrNameEnd);
      j = attrNameEnd;
      while (WS.test(src[j] ?? '')) j++;
      if (src[j] !== '=') throw new XmlError(`attribute ${name} without a value`, j);
      j++;
      while (WS.test(src[j] ?? '')) j++;
      const quote = src[j];
      if (quote !== '"' && quote !== "'") throw new XmlError(`unquoted value for attribute ${name}`, j);
      const valueEnd = src.indexOf(quote, j + 1);
      if (valueEnd < 0) throw new XmlError(`unterminated value for attribute ${name}`, j);
      const rawValue = src.slice(j + 1, valueEnd);
      if (rawValue.includes('<')) throw new XmlError(`'<' in the value of attribute ${name}`, j);
      if (el.attrs.some((a) => a.name === name)) throw new XmlError(`duplicate attribute ${name}`, attrStart);
      el.attrs.push({ name, value: decodeEntities(rawValue), quote, raw: src.slice(attrStart, valueEnd + 1) });
      j = valueEnd + 1;
    }
    el.rawOpen = src.slice(start, j);
    top().children.push(el);
    if (!el.selfClosing) stack.push(el);
    return j;
  }
}

// ---------------------------------------------------------------- serialize

function openTag(el: XmlElement, selfClose: boolean): string {
  if (el.rawOpen !== undefined && el.selfClosing === selfClose) return el.rawOpen;
  const attrs = el.attrs.map((a) => ' ' + (a.raw ?? `${a.name}=${a.quote}${escapeAttr(a.value)}${a.quote}`)).join('');
  return `<${el.name}${attrs}${selfClose ? '/>' : '>'}`;
}

export function serializeNode(node: XmlNode): string {
  if (node.type !== 'element') return node.raw;
  const selfClose = node.selfClosing && node.children.length === 0;
  if (selfClose) return openTag(node, true);
  return openTag(node, false) + node.children.map(serializeNode).join('') + (node.rawClose ?? `</${node.name}>`);
}

export function serializeXml(doc: XmlDocument | XmlElement): string {
  return doc.type === 'document' ? doc.children.map(serializeNode).join('') : serializeNode(doc);
}

// ---------------------------------------------------------------- query and edit

export function rootElement(doc: XmlDocument): XmlElement {
  const root = doc.children.find((n): n is XmlElement => n.type === 'element');
  if (!root) throw new XmlError('no root element', 0);
  return root;
}

export function childElements(parent: XmlParent, name?: string): XmlElement[] {
  return parent.children.filter((n): n is XmlElement => n.type === 'element' && (name === undefined || n.name === name));
}

export function firstChild(parent: XmlParent, name: string): XmlElement | undefined {
  return parent.children.find((n): n is XmlElement => n.type === 'element' && n.name === name);
}

/** Elements along a child path such as "devices/disk". */
export function findAll(parent: XmlParent, path: string): XmlElement[] {
  let level: XmlParent[] = [parent];
  for (const step of path.split('/')) level = level.flatMap((p) => childElements(p, step));
  return level as XmlElement[];
}

export function getAttr(el: XmlElement, name: string): string | undefined {
  return el.attrs.find((a) => a.name === name)?.value;
}

export function hasAttr(el: XmlElement, name: string): boolean {
  return el.attrs.some((a) => a.name === name);
}

export function setAttr(el: XmlElement, name: string, value: string): void {
  const existing = el.attrs.find((a) => a.name === name);
  if (existing) {
    if (existing.value === value) return;
    existing.value = value;
    delete existing.raw;
  } else {
    // Match the element's quoting; libvirt writes single quotes.
    el.attrs.push({ name, value, quote: el.attrs[0]?.quote ?? "'" });
  }
  delete el.rawOpen;
}

export function removeAttr(el: XmlElement, name: string): void {
  const idx = el.attrs.findIndex((a) => a.name === name);
  if (idx < 0) return;
  el.attrs.splice(idx, 1);
  delete el.rawOpen;
}

/** Decoded text of the element and its descendants. */
export function textContent(node: XmlNode | XmlDocument): string {
  switch (node.type) {
    case 'text':
      return decodeEntities(node.raw);
    case 'cdata':
      return node.raw.slice(9, -3);
    case 'element':
    case 'document':
      return node.children.map(textContent).join('');
    default:
      return '';
  }
}

export function setTextContent(el: XmlElement, value: string): void {
  el.children = value === '' ? [] : [{ type: 'text', raw: escapeText(value) }];
}

export function createElement(name: string, attrs: Record<string, string> = {}, quote: '"' | "'" = "'"): XmlElement {
  return {
    type: 'element',
    name,
    attrs: Object.entries(attrs).map(([n, value]) => ({ name: n, value, quote })),
    children: [],
    selfClosing: true,
  };
}

export function replaceChild(parent: XmlParent, oldChild: XmlNode, newChild: XmlNode): void {
  const idx = parent.children.indexOf(oldChild);
  if (idx < 0) throw new Error('replaceChild: not a child of this parent');
  parent.children[idx] = newChild;
}

export function removeChild(parent: XmlParent, child: XmlNode): void {
  const idx = parent.children.indexOf(child);
  if (idx < 0) return;
  // Take the indentation that preceded the child with it.
  const prev = parent.children[idx - 1];
  if (prev?.type === 'text' && /^\s+$/.test(prev.raw)) parent.children.splice(idx - 1, 2);
  else parent.children.splice(idx, 1);
}
