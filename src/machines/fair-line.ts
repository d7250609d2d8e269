/**
 * A waiting line served fairly across owners: round robin over the owners who have something waiting,
 * FIFO within each owner. One owner's thousand waiting jobs cannot hold another owner's one job behind
 * them. Immutable, so a machine's context stays a value.
 */

/** An item that belongs to an owner. */
export interface Owned {
  owner: string;
}

export interface FairLine<T extends Owned> {
  /** Each owner's waiting items, oldest first. */
  readonly byOwner: ReadonlyMap<string, readonly T[]>;
  /** Owners with something waiting, in the order they are served next. */
  readonly rotation: readonly string[];
  readonly size: number;
}

export function emptyLine<T extends Owned>(): FairLine<T> {
  return { byOwner: new Map(), rotation: [], size: 0 };
}

/** Adds an item at the end of its owner's line; a new owner joins the rotation last. */
export function join<T extends Owned>(line: FairLine<T>, item: T): FairLine<T> {
  const own = line.byOwner.get(item.owner);
  const byOwner = new Map(line.byOwner).set(item.owner, own === undefined ? [item] : [...own, item]);
  const rotation = own === undefined ? [...line.rotation, item.owner] : line.rotation;
  return { byOwner, rotation, size: line.size + 1 };
}

/** The next item to serve: the first of the owner whose turn it is; that owner goes to the back. */
export function take<T extends Owned>(line: FairLine<T>): { line: FairLine<T>; item?: T } {
  const [owner, ...others] = line.rotation;
  if (owner === undefined) return { line };
  const [item, ...rest] = line.byOwner.get(owner) ?? [];
  const byOwner = new Map(line.byOwner);
  if (rest.length > 0) byOwner.set(owner, rest);
  else byOwner.delete(owner);
  const rotation = rest.length > 0 ? [...others, owner] : others;
  return { line: { byOwner, rotation, size: line.size - 1 }, ...(item === undefined ? {} : { item }) };
}

/** Removes the first item that matches; the line is unchanged when none does. */
export function remove<T extends Owned>(line: FairLine<T>, matches: (item: T) => boolean): { line: FairLine<T>; item?: T } {
  for (const [owner, items] of line.byOwner) {
    const index = items.findIndex(matches);
    if (index < 0) continue;
    const rest = items.toSpliced(index, 1);
    const byOwner = new Map(line.byOwner);
    if (rest.length > 0) byOwner.set(owner, rest);
    else byOwner.delete(owner);
    const rotation = rest.length > 0 ? line.rotation : line.rotation.filter((name) => name !== owner);
    return { line: { byOwner, rotation, size: line.size - 1 }, item: items[index] as T };
  }
  return { line };
}

/** Every item in the order it would be served if nothing else joined. */
export function servingOrder<T extends Owned>(line: FairLine<T>): T[] {
  const lines = line.rotation.map((owner) => line.byOwner.get(owner) ?? []);
  const order: T[] = [];
  for (let round = 0; order.length < line.size; round++) {
    for (const items of lines) {
      const item = items[round];
      if (item !== undefined) order.push(item);
    }
  }
  return order;
}
