/**
 * Records sorted by name, with each one's place. The scheduling pass scans every
 * exporter of a namespace in name order, and every status report changes one
 * exporter: a changed record takes its place again instead of all being sorted anew.
 * Both stores keep their exporters' scan this way.
 */
export interface SortedByName<T extends { name: string }> {
  records: T[];
  at: Map<string, number>;
}

export function sortByName<T extends { name: string }>(values: Iterable<T>): SortedByName<T> {
  const records = [...values].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { records, at: new Map(records.map((e, i) => [e.name, i])) };
}

/** Puts `e` in the place of the record of its name; false when there is none (a new name: sort again). */
export function replaceByName<T extends { name: string }>(sorted: SortedByName<T> | null | undefined, e: T): boolean {
  const i = sorted?.at.get(e.name);
  if (i === undefined) return false;
  sorted!.records[i] = e;
  return true;
}
