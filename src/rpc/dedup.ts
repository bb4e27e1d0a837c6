// Remembers the last N `_unique_id`s to drop redelivered duplicates (oslo keeps 16).

export class UniqueIdCache {
  private readonly ids: string[] = [];
  private readonly seen = new Set<string>();

  constructor(private readonly size = 16) {}

  /** True if the id was seen recently; otherwise records it. Missing ids are never duplicates. */
  checkAndAdd(id: unknown): boolean {
    if (typeof id !== 'string' || id === '') return false;
    if (this.seen.has(id)) return true;
    this.ids.push(id);
    this.seen.add(id);
    if (this.ids.length > this.size) this.seen.delete(this.ids.shift()!);
    return false;
  }
}
