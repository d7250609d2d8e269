import { afterEach, describe, expect, it, vi } from 'vitest';
import { RefusalLog } from '../src/transport/refusal-log.js';
import { capturingLog } from './helpers/ws-harness.js';

const MINUTE = 60_000;
const unauthorized = { status: 401, reason: 'unauthorized' };

afterEach(() => {
  vi.useRealTimers();
});

describe('RefusalLog', () => {
  it('logs 5000 refusals of one address as one line, and the count when the minute is over', () => {
    vi.useFakeTimers();
    const { log, lines } = capturingLog('info');
    const refusals = new RefusalLog({ log, message: 'upgrade refused', now: () => Date.now() });
    for (let i = 0; i < 5000; i++) refusals.note('10.0.0.1', i === 4999 ? { status: 403, reason: 'foreign_host' } : unauthorized);
    expect(lines).toEqual([expect.objectContaining({ msg: 'upgrade refused', remote: '10.0.0.1', status: 401, reason: 'unauthorized' })]);

    vi.advanceTimersByTime(MINUTE - 1);
    expect(lines).toHaveLength(1);
    // The sweep runs once a minute; a window that began with it is over at the next one.
    vi.advanceTimersByTime(1);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ remote: '10.0.0.1', refused: 4999, lastStatus: 403, windowMs: MINUTE });
    expect(lines[1]?.msg).toMatch(/repeated/);
    // The address was dropped: the next refusal is logged again at once.
    expect(refusals.size).toBe(0);
    refusals.note('10.0.0.1', unauthorized);
    expect(lines).toHaveLength(3);
    refusals.close();
  });

  it('logs the count with the next line of that address when the sweep has not run yet', () => {
    let clock = 0;
    const { log, lines } = capturingLog('info');
    const refusals = new RefusalLog({ log, message: 'upgrade refused', now: () => clock });
    refusals.note('::1', unauthorized);
    for (let i = 0; i < 10; i++) refusals.note('::1', unauthorized);
    clock = MINUTE;
    refusals.note('::1', { status: 404, reason: 'not_found' });
    expect(lines.map((line) => [line.refused ?? null, line.status ?? null])).toEqual([
      [null, 401],
      [10, null],
      [null, 404],
    ]);
    refusals.close();
  });

  it('keeps each address apart and drops idle ones; an address refused once writes one line and no count', () => {
    let clock = 0;
    const { log, lines } = capturingLog('info');
    const refusals = new RefusalLog({ log, message: 'upgrade refused', now: () => clock });
    refusals.note('10.0.0.1', unauthorized);
    refusals.note('10.0.0.2', unauthorized);
    refusals.note('10.0.0.2', unauthorized);
    expect(lines.map((line) => line.remote)).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(refusals.size).toBe(2);
    clock = MINUTE;
    refusals.sweep();
    expect(refusals.size).toBe(0);
    expect(lines.slice(2)).toEqual([expect.objectContaining({ remote: '10.0.0.2', refused: 1 })]);
    refusals.close();
  });

  it('tracks at most maxAddresses addresses; refusals from more are counted in one line', () => {
    let clock = 0;
    const { log, lines } = capturingLog('info');
    const refusals = new RefusalLog({ log, message: 'upgrade refused', now: () => clock, maxAddresses: 100 });
    for (let i = 0; i < 1000; i++) refusals.note(`10.0.${i >> 8}.${i & 255}`, unauthorized);
    expect(refusals.size).toBe(100);
    expect(lines).toHaveLength(100);
    clock = MINUTE;
    refusals.sweep();
    expect(refusals.size).toBe(0);
    expect(lines.slice(100)).toEqual([expect.objectContaining({ refused: 900, maxAddresses: 100, level: 40 })]);
    refusals.close();
  });

  it('close() stops the sweep and logs the counts still held', () => {
    vi.useFakeTimers();
    const { log, lines } = capturingLog('info');
    const refusals = new RefusalLog({ log, message: 'upgrade refused', now: () => Date.now() });
    refusals.note('10.0.0.1', unauthorized);
    refusals.note('10.0.0.1', unauthorized);
    refusals.close();
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ refused: 1 });
    expect(vi.getTimerCount()).toBe(0);
  });
});
