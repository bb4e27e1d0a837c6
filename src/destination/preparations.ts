// What this host's pre_live_migration created, per incoming instance, so a
// roll back removes exactly that and never what it did not make. Kept in
// memory: a ferryd that restarted knows of nothing, and its roll back then
// removes nothing (when in doubt, keep).

export class Preparations {
  /** Instances whose folder this host created for an incoming migration. */
  private readonly createdDirs = new Set<string>();

  /** pre_live_migration made the instance folder (and the empty disks in it). */
  noteDirMade(instanceUuid: string): void {
    this.createdDirs.add(instanceUuid);
  }

  /** Whether this host made the instance's folder for a migration still to finish or roll back. */
  madeDir(instanceUuid: string): boolean {
    return this.createdDirs.has(instanceUuid);
  }

  /** The migration ended (arrived, or rolled back): nothing of it is left to undo. */
  forget(instanceUuid: string): void {
    this.createdDirs.delete(instanceUuid);
  }
}
