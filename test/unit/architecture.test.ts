// The layout stays what the README says: one concern per folder, folders in
// one dependency order, imports pointing down it only, no folder too big.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');
const README = resolve(import.meta.dirname, '../../README.md');

/**
 * Top to bottom. A module may import from its own folder and from folders
 * below it; folders on one line are peers and may not import each other.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['cli'],
  ['compute'],
  ['metrics'],
  ['source', 'destination', 'instance'],
  ['monitor'],
  ['nova'],
  ['record'],
  ['domain'],
  ['config'],
  ['libvirt'],
  ['rpc'],
  ['broker'],
  ['log'],
  ['validate'],
];
const MAX_FILES = 14;

const rank = new Map(LAYERS.flatMap((folders, i) => folders.map((f) => [f, i] as const)));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

const files = sources(SRC);
const folderOf = (file: string) => relative(SRC, file).split('/')[0]!;
const folders = [...new Set(files.map(folderOf))];

/** Relative module specifiers of static imports, re-exports and dynamic imports. */
function relativeImports(text: string): string[] {
  const specs = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)['"](\.[^'"]+)['"]/gm)].map((m) => m[1]!);
  return specs;
}

/** Import edges that do not point down the layer order, as "from -> to". */
function upwardImports(): string[] {
  const bad: string[] = [];
  for (const file of files) {
    const from = folderOf(file);
    for (const spec of relativeImports(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), spec);
      if (!target.startsWith(SRC + '/')) continue;
      const to = folderOf(target);
      if (to === from) continue;
      if (!(rank.get(to)! > rank.get(from)!)) bad.push(`${relative(SRC, file)} -> ${to}/ (${spec})`);
    }
  }
  return bad;
}

const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').length;

describe('architecture', () => {
  it('every folder under src/ has its place in the order, and every place a folder', () => {
    expect([...folders].sort()).toEqual(LAYERS.flat().slice().sort());
  });

  it('imports point down the order only (peers do not import each other)', () => {
    expect(upwardImports()).toEqual([]);
  });

  it('the scanner finds static imports, re-exports and dynamic imports', () => {
    // An empty list above must mean "none upward", not "none seen".
    expect(files.some((f) => relativeImports(readFileSync(f, 'utf8')).some((s) => s.startsWith('../')))).toBe(true);
    expect(relativeImports(`import { a } from '../cli/x.js';\nexport { b } from './y.js';\nconst c = await import('../rpc/z.js');`)).toEqual(['../cli/x.js', './y.js', '../rpc/z.js']);
  });

  it(`no folder holds more than ${MAX_FILES} files or more than a third of the code`, () => {
    const total = files.reduce((n, f) => n + lines(f), 0);
    const over = folders.flatMap((folder) => {
      const own = files.filter((f) => folderOf(f) === folder);
      const size = own.reduce((n, f) => n + lines(f), 0);
      return own.length > MAX_FILES || size > total / 3 ? [`${folder}/: ${own.length} files, ${size} of ${total} lines`] : [];
    });
    expect(over).toEqual([]);
  });

  it("each folder's README says what it owns", () => {
    for (const folder of folders) {
      const text = readFileSync(join(SRC, folder, 'README.md'), 'utf8');
      expect(text.split('\n')[0], `src/${folder}/README.md`).toBe(`# src/${folder}`);
      expect(text, `src/${folder}/README.md`).toMatch(/^Owns /m);
    }
  });

  it("the README's architecture section lists the folders in this order", () => {
    const readme = readFileSync(README, 'utf8');
    const section = readme.slice(readme.indexOf('## Architecture'), readme.indexOf('\n## ', readme.indexOf('## Architecture') + 1));
    const listed = [...section.matchAll(/^- `src\/([a-z]+)\/`/gm)].map((m) => m[1]);
    expect(listed).toEqual(LAYERS.flat());
  });
});
