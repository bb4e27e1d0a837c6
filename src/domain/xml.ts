// libvirt XML as a standard DOM (@xmldom/xmldom), plus the few lookups the
// domain code needs. Output is not byte-identical to the input (attributes
// come back double-quoted, entities may be written differently); libvirt
// re-parses it, so only the meaning has to survive.
import { DOMParser, MIME_TYPE, XMLSerializer, type Document, type Element, type Node } from '@xmldom/xmldom';

/** A parsed document; xmldom rejects input without a root element, so it always has one. */
export type XmlDocument = Document & { readonly documentElement: Element };

/** Parses XML, throwing `invalid XML: <problem>` at the first error. */
export function parseXml(src: string): XmlDocument {
  let problem: string | undefined;
  const parser = new DOMParser({
    // Warnings are slips xmldom repairs on its own (an unquoted attribute value,
    // say), which libvirt never writes. Errors would otherwise only be logged
    // while parsing carries on with a guessed tree, e.g. an unknown entity kept
    // as text; throwing stops at the first one.
    onError: (level, message) => {
      if (level === 'warning') return;
      problem ??= message;
      throw new Error(message);
    },
  });
  try {
    return parser.parseFromString(src, MIME_TYPE.XML_APPLICATION) as XmlDocument;
  } catch (err) {
    // xmldom wraps what onError throws in a wordier ParseError; report the problem itself.
    if (problem === undefined) throw err;
    throw new Error(`invalid XML: ${problem}`, { cause: err });
  }
}

export function serializeXml(node: Node): string {
  return new XMLSerializer().serializeToString(node);
}

/** Child elements with the given (qualified) name, e.g. "disk" or "nova:instance". */
export function childElements(parent: Element, name: string): Element[] {
  return [...parent.children].filter((el) => el.tagName === name);
}

export function firstChild(parent: Element, name: string): Element | undefined {
  return childElements(parent, name)[0];
}

/** Elements along a child path such as "devices/disk". */
export function findAll(parent: Element, path: string): Element[] {
  let level = [parent];
  for (const step of path.split('/')) level = level.flatMap((el) => childElements(el, step));
  return level;
}

/** Decoded text of the element and its descendants (CDATA included, comments not). */
export function textContent(el: Element): string {
  return el.textContent ?? '';
}
