import { describe, expect, it } from 'vitest';
import {
  XmlError, createElement, decodeEntities, findAll, firstChild, getAttr, parseXml, removeAttr, removeChild,
  rootElement, serializeXml, setAttr, setTextContent, textContent,
} from '../../src/domain/xml.js';

const LIBVIRT = `<?xml version="1.0"?>
<!-- WARNING: THIS IS AN AUTO-GENERATED FILE -->
<domain type='kvm' id='3' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>inst&amp;1</name>
  <uuid>0e7d6b54-6b67-4b2f-a1a6-c5a6bb3d2b8e</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
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
    <script><![CDATA[ if (a < b) {} ]]></script>
    <empty></empty>
  </devices>
  <qemu:commandline/>
</domain>
`;

describe('xml round trip', () => {
  it('serializes an unedited document byte for byte', () => {
    expect(serializeXml(parseXml(LIBVIRT))).toBe(LIBVIRT);
  });
  it('keeps odd spacing, quotes and entities exactly', () => {
    const src = `<a  x = "1"\n   y='2&amp;3' >t&lt;&#x20;</a  >`;
    expect(serializeXml(parseXml(src))).toBe(src);
  });
  it('handles a DOCTYPE with an internal subset', () => {
    const src = `<!DOCTYPE a [ <!ENTITY x "y"> ]><a/>`;
    expect(serializeXml(parseXml(src))).toBe(src);
  });
});

describe('xml queries', () => {
  const doc = parseXml(LIBVIRT);
  const domain = rootElement(doc);
  it('finds the root and attributes', () => {
    expect(domain.name).toBe('domain');
    expect(getAttr(domain, 'type')).toBe('kvm');
    expect(getAttr(domain, 'missing')).toBeUndefined();
  });
  it('decodes text and attribute entities', () => {
    expect(textContent(firstChild(domain, 'name')!)).toBe('inst&1');
    expect(textContent(findAll(domain, 'metadata/nova:instance/nova:name')[0]!)).toBe('a <b> "c" é A');
    expect(getAttr(findAll(domain, 'devices/graphics')[0]!, 'passwd')).toBe("a'b");
  });
  it('reads CDATA text', () => {
    expect(textContent(findAll(domain, 'devices/script')[0]!)).toBe(' if (a < b) {} ');
  });
  it('finds by path', () => {
    expect(findAll(domain, 'devices/disk/target').map((t) => getAttr(t, 'dev'))).toEqual(['vda']);
  });
  it('leaves unknown entities alone', () => {
    expect(decodeEntities('&nbsp; &amp;')).toBe('&nbsp; &');
  });
});

describe('xml edits touch only what changed', () => {
  it('setAttr rewrites just that start tag, keeping the quote style', () => {
    const doc = parseXml(LIBVIRT);
    const g = findAll(rootElement(doc), 'devices/graphics')[0]!;
    setAttr(g, 'listen', '10.0.0.5');
    const out = serializeXml(doc);
    expect(out).toContain(`<graphics type='vnc' port='-1' autoport='yes' listen='10.0.0.5' passwd='a&apos;b'>`);
    expect(out.replace(`listen='10.0.0.5'`, `listen='127.0.0.1'`)).toBe(LIBVIRT);
  });
  it('setting the same value changes nothing', () => {
    const doc = parseXml(LIBVIRT);
    setAttr(rootElement(doc), 'type', 'kvm');
    expect(serializeXml(doc)).toBe(LIBVIRT);
  });
  it('new attributes are appended and escaped', () => {
    const doc = parseXml(`<a x="1"/>`);
    setAttr(rootElement(doc), 'y', `<"&'>`);
    expect(serializeXml(doc)).toBe(`<a x="1" y="&lt;&quot;&amp;&apos;&gt;"/>`);
  });
  it('removeAttr', () => {
    const doc = parseXml(`<a x='1' y='2'/>`);
    removeAttr(rootElement(doc), 'x');
    expect(serializeXml(doc)).toBe(`<a y='2'/>`);
  });
  it('a self-closing element that gains children gets an end tag', () => {
    const doc = parseXml(`<a><b k='v'/></a>`);
    const b = firstChild(rootElement(doc), 'b')!;
    b.children.push(createElement('c'));
    expect(serializeXml(doc)).toBe(`<a><b k='v'><c/></b></a>`);
  });
  it('setTextContent escapes', () => {
    const doc = parseXml(`<a><n>x</n></a>`);
    setTextContent(firstChild(rootElement(doc), 'n')!, 'a<b&c');
    expect(serializeXml(doc)).toBe(`<a><n>a&lt;b&amp;c</n></a>`);
  });
  it('removeChild takes its indentation with it', () => {
    const doc = parseXml(`<a>\n  <b/>\n  <c/>\n</a>`);
    const a = rootElement(doc);
    removeChild(a, firstChild(a, 'c')!);
    expect(serializeXml(doc)).toBe(`<a>\n  <b/>\n</a>`);
  });
});

describe('xml errors', () => {
  it.each([
    ['<a><b></a>', /unexpected <\/a>, expected <\/b>/],
    ['<a>', /unclosed element <a>/],
    ['<a x=1/>', /unquoted value/],
    ['<a x="1" x="2"/>', /duplicate attribute x/],
    ['<a x/>', /without a value/],
    ['<!-- x', /unterminated comment/],
    ['</a>', /unexpected <\/a>/],
    ['<a x="1"y="2"/>', /expected whitespace/],
    ['<a x="<"/>', /'<' in the value/],
  ])('%j', (src, msg) => {
    expect(() => parseXml(src)).toThrow(XmlError);
    expect(() => parseXml(src)).toThrow(msg);
  });
  it('no root element', () => {
    expect(() => rootElement(parseXml('<!-- only -->'))).toThrow(/no root element/);
  });
});
