import { describe, expect, it } from 'vitest';
import { childElements, findAll, firstChild, parseXml, serializeXml, textContent } from '../../src/domain/xml.js';

const NOVA_NS = 'http://openstack.org/xmlns/libvirt/nova/1.1';

const LIBVIRT = `<?xml version="1.0"?>
<!-- WARNING: THIS IS AN AUTO-GENERATED FILE -->
<domain type='kvm' id='3' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>inst&amp;1</name>
  <uuid>0e7d6b54-6b67-4b2f-a1a6-c5a6bb3d2b8e</uuid>
  <metadata>
    <nova:instance xmlns:nova="${NOVA_NS}">
      <nova:name>a &lt;b&gt; &quot;c&quot; &#233; &#x41;</nova:name>
    </nova:instance>
  </metadata>
  <devices>
    <disk type="file"   device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/var/lib/nova/instances/x/disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='a&apos;b'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <!-- devices end here -->
    <script><![CDATA[ if (a < b) {} ]]></script>
    <empty></empty>
  </devices>
  <qemu:commandline/>
</domain>
`;

describe('xml round trip', () => {
  it('is stable: what it writes parses back to the same document', () => {
    const once = serializeXml(parseXml(LIBVIRT));
    expect(serializeXml(parseXml(once))).toBe(once);
  });
  it('keeps the declaration, comments, CDATA and namespace declarations', () => {
    const out = serializeXml(parseXml(LIBVIRT));
    expect(out).toMatch(/^<\?xml version="1.0"\?>\n<!-- WARNING: THIS IS AN AUTO-GENERATED FILE -->\n<domain /);
    expect(out).toContain('<!-- devices end here -->');
    expect(out).toContain('<script><![CDATA[ if (a < b) {} ]]></script>');
    expect(out).toContain(`xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0"`);
    expect(out).toContain(`<nova:instance xmlns:nova="${NOVA_NS}">`);
  });
  it('namespaced elements keep their namespace through a round trip', () => {
    const again = parseXml(serializeXml(parseXml(LIBVIRT))).documentElement;
    const name = findAll(again, 'metadata/nova:instance/nova:name')[0]!;
    expect([name.namespaceURI, name.prefix, name.localName]).toEqual([NOVA_NS, 'nova', 'name']);
    expect(firstChild(again, 'qemu:commandline')!.namespaceURI).toBe('http://libvirt.org/schemas/domain/qemu/1.0');
  });
  it('writes escaped values that parse back to what was set', () => {
    const doc = parseXml(`<a><n>x</n></a>`);
    const a = doc.documentElement;
    a.setAttribute('y', `<"&'>\n`);
    firstChild(a, 'n')!.textContent = 'a<b&c]]>';
    const again = parseXml(serializeXml(doc)).documentElement;
    expect(again.getAttribute('y')).toBe(`<"&'>\n`);
    expect(textContent(firstChild(again, 'n')!)).toBe('a<b&c]]>');
  });
  it('an element without children is written self-closed', () => {
    const doc = parseXml(`<a><b k='v'>\n</b></a>`);
    const b = firstChild(doc.documentElement, 'b')!;
    b.removeChild(b.firstChild!);
    expect(serializeXml(doc)).toBe(`<a><b k="v"/></a>`);
  });
});

describe('xml queries', () => {
  const domain = parseXml(LIBVIRT).documentElement;
  it('finds the root and attributes', () => {
    expect(domain.tagName).toBe('domain');
    expect(domain.getAttribute('type')).toBe('kvm');
    expect(domain.getAttribute('missing')).toBeNull();
  });
  it('decodes text and attribute entities', () => {
    expect(textContent(firstChild(domain, 'name')!)).toBe('inst&1');
    expect(textContent(findAll(domain, 'metadata/nova:instance/nova:name')[0]!)).toBe('a <b> "c" é A');
    expect(findAll(domain, 'devices/graphics')[0]!.getAttribute('passwd')).toBe("a'b");
  });
  it('reads CDATA as text and leaves comments out', () => {
    expect(textContent(findAll(domain, 'devices/script')[0]!)).toBe(' if (a < b) {} ');
    expect(textContent(firstChild(domain, 'devices')!)).not.toContain('devices end here');
  });
  it('finds by path', () => {
    expect(findAll(domain, 'devices/disk/target').map((t) => t.getAttribute('dev'))).toEqual(['vda']);
    expect(findAll(domain, 'devices/nothing/target')).toEqual([]);
  });
  it('matches children by qualified name', () => {
    const metadata = firstChild(domain, 'metadata')!;
    expect(childElements(metadata, 'nova:instance')).toHaveLength(1);
    expect(childElements(metadata, 'instance')).toEqual([]);
    expect(firstChild(domain, 'missing')).toBeUndefined();
  });
});

function parseFailure(src: string): string {
  try {
    parseXml(src);
  } catch (err) {
    if (err instanceof Error) return err.message;
    throw err;
  }
  return 'parsed without an error';
}

describe('xml errors', () => {
  it.each([
    ['<a><b></a>', 'Opening and ending tag mismatch: "b" != "a"'],
    ['<a>', 'unclosed xml tag(s): a'],
    ['<a x="1" x="2"/>', 'Attribute x redefined'],
    ['<!-- x', 'comment is not well-formed'],
    ['</a>', 'missing root element'],
    ['<a x="<"/>', "Unescaped '<' not allowed in attributes values"],
    ['<a/><b/>', 'Only one element can be added'],
    ['<nova:instance/>', 'prefix is non-null and namespace is null'],
    // reported by xmldom as errors rather than fatal ones; they must stop the parse too
    ['<a>&nbsp;</a>', 'entity not found:&nbsp;'],
    ['<a/>trailing', 'Extra content at the end of the document'],
  ])('%j', (src, problem) => {
    const message = parseFailure(src);
    expect(message.startsWith('invalid XML: ')).toBe(true);
    expect(message).toContain(problem);
  });
  it('no root element', () => {
    expect(() => parseXml('<!-- only -->')).toThrow(/^invalid XML: missing root element$/);
    expect(() => parseXml('')).toThrow(/^invalid XML: missing root element$/);
  });
  it('slips xmldom only warns about are repaired, not rejected', () => {
    const a = parseXml('<a x="1"y="2"/>').documentElement;
    expect([a.getAttribute('x'), a.getAttribute('y')]).toEqual(['1', '2']);
  });
});
