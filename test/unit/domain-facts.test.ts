import { describe, expect, it } from 'vitest';
import { guestCpu, guestFacts, hostArch, supportedGuests, usableCpuModels } from '../../src/domain/facts.js';

const DOMAIN = `<domain type='qemu'>
  <name>g</name>
  <memory unit='KiB'>262144</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>
</domain>`;

const CAPS = `<capabilities>
  <host><cpu><arch>x86_64</arch></cpu></host>
  <guest><os_type>hvm</os_type>
    <arch name='i686'><domain type='qemu'/></arch>
  </guest>
  <guest><os_type>hvm</os_type>
    <arch name='x86_64'><wordsize>64</wordsize><domain type='qemu'/><domain type='kvm'/></arch>
  </guest>
</capabilities>`;

const DOMCAPS = `<domainCapabilities>
  <cpu>
    <mode name='host-passthrough' supported='yes'/>
    <mode name='custom' supported='yes'>
      <model usable='yes' vendor='unknown'>qemu64</model>
      <model usable='no' vendor='Intel'>Skylake-Server</model>
      <model usable='unknown' vendor='AMD'>EPYC</model>
    </mode>
  </cpu>
</domainCapabilities>`;

describe('domain facts', () => {
  it('reads virt type, arch and memory of a guest', () => {
    expect(guestFacts(DOMAIN)).toEqual({ virtType: 'qemu', arch: 'x86_64', memoryMb: 256 });
    expect(guestFacts(DOMAIN.replace("<memory unit='KiB'>262144</memory>", "<memory unit='GiB'>2</memory>")).memoryMb).toBe(2048);
  });

  it("reads the host's own arch", () => {
    expect(hostArch(CAPS)).toBe('x86_64');
  });

  it('lists every arch/virt type pair the host offers', () => {
    expect(supportedGuests(CAPS).sort()).toEqual(['i686/qemu', 'x86_64/kvm', 'x86_64/qemu']);
  });

  it('names the CPU model only for custom mode', () => {
    expect(guestCpu(DOMAIN)).toEqual({ mode: 'custom', model: 'qemu64' });
    expect(guestCpu(DOMAIN.replace(/<cpu[\s\S]*<\/cpu>/, "<cpu mode='host-passthrough'/>"))).toEqual({ mode: 'host-passthrough', model: null });
    expect(guestCpu(DOMAIN.replace(/<cpu[\s\S]*<\/cpu>/, ''))).toEqual({ mode: 'none', model: null });
  });

  it('rejects XML that does not parse, naming the problem', () => {
    expect(() => guestFacts(DOMAIN.replace('</memory>', ''))).toThrow(/^invalid XML: Opening and ending tag mismatch/);
  });

  it('keeps usable and unknown models, drops unusable ones', () => {
    expect(usableCpuModels(DOMCAPS)).toEqual(['qemu64', 'EPYC']);
    expect(usableCpuModels('<domainCapabilities><cpu/></domainCapabilities>')).toEqual([]);
  });
});
