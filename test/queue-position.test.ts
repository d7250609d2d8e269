import { describe, expect, it } from 'vitest';
import { announcesMove } from '../src/machines/queue-position.js';

/** The places a waiter starting at `start` is told, moving one place at a time to the front. */
function announced(start: number): number[] {
  const told = [start];
  for (let place = start - 1; place >= 1; place -= 1) if (announcesMove(told.at(-1) as number, place)) told.push(place);
  return told;
}

describe('announcesMove', () => {
  it('tells the last three places and the milestones on the way down, nothing else', () => {
    expect(announced(2000)).toEqual([2000, 1000, 300, 100, 30, 10, 3, 2, 1]);
    expect(announced(45)).toEqual([45, 30, 10, 3, 2, 1]);
    expect(announced(5)).toEqual([5, 3, 2, 1]);
    expect(announced(1)).toEqual([1]);
  });

  it('announces a jump past a milestone once, and never a move back or a standstill', () => {
    expect(announcesMove(12, 9)).toBe(true);
    expect(announcesMove(9, 8)).toBe(false);
    expect(announcesMove(8, 8)).toBe(false);
    expect(announcesMove(3, 4)).toBe(false);
  });

  it('keeps every line to at most 10 announcements for up to 10 000 waiters', () => {
    for (const start of [10_000, 5_000, 2_000, 999, 101, 11]) expect(announced(start).length).toBeLessThanOrEqual(10);
  });
});
