// Paths named by another host or a caller: absolute, already normal (no
// `.`, `..`, `//` or trailing slash), so what is checked is what is opened.
import { posix } from 'node:path';

export function isNormalAbsolute(path: string): boolean {
  return path.startsWith('/') && !path.includes('\0') && posix.normalize(path) === path && (path === '/' || !path.endsWith('/'));
}

/**
 * Whether `path` names an entry directly inside `folder` (itself normal and absolute).
 *
 *   isDirectlyInside('/v/i', '/v/i/disk')        // true
 *   isDirectlyInside('/v/i', '/v/i/..')          // false
 *   isDirectlyInside('/v/i', '/v/i/.')           // false
 *   isDirectlyInside('/v/i', '/v/i/sub/disk')    // false
 *   isDirectlyInside('/v/i', '/v/i/../j/disk')   // false
 */
export function isDirectlyInside(folder: string, path: string): boolean {
  if (!isNormalAbsolute(path) || path === folder) return false;
  return posix.dirname(path) === folder;
}
