/**
 * When a waiting request or job is told its place in line (DESIGN §4, bounded): on arrival, and when it
 * moves to a place that matters — one of the last three before its turn, or past a milestone on the way
 * down (1000, 300, 100, 30, 10, … alternating ×10/3). A job that arrives 2000th hears its place nine
 * times; never once per dispatch for every waiter.
 */

/** Milestones below `limit`, largest first: … 1000, 300, 100, 30, 10. */
function* milestonesBelow(limit: number): Generator<number> {
  let power = 10;
  while (power * 10 < limit) power *= 10;
  for (; power >= 10; power /= 10) {
    if (3 * power < limit) yield 3 * power;
    if (power < limit) yield power;
  }
}

/** Whether a move from place `previous` to place `current` (1-based, smaller is sooner) is announced. */
export function announcesMove(previous: number, current: number): boolean {
  if (current >= previous) return false;
  if (current <= 3) return true;
  // Crossed (or reached) the nearest milestone below the place it was told last.
  const nearest = milestonesBelow(previous).next().value;
  return nearest !== undefined && nearest >= current;
}
