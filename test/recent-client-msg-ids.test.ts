/** The in-memory index of recent clientMsgIds: what it knows, and when it must say "ask the database". */
import { describe, expect, it } from 'vitest';
import { RecentClientMsgIds } from '../src/actors/store/recent-client-msg-ids.js';

const HOUR = 60 * 60 * 1000;
const at = (ms: number) => new Date(ms);
const job = (n: number) => ({ jobId: `job-${n}`, conversationId: `conv-${n}` });

describe('RecentClientMsgIds', () => {
  it('knows nothing before it is loaded: every lookup goes to the database', () => {
    const index = new RecentClientMsgIds(24 * HOUR);
    index.add('alice', 'm1', job(1), at(10 * HOUR));
    expect(index.find('alice', 'm1', at(0))).toEqual(job(1));
    expect(index.find('alice', 'm2', at(0))).toBeUndefined();
  });

  it('after a complete load, a miss inside the window is a sure "no"; before it, "ask"', () => {
    const index = new RecentClientMsgIds(24 * HOUR);
    index.load([{ ...job(1), owner: 'alice', clientMsgId: 'm1', createdAt: at(5 * HOUR) }], at(1 * HOUR), true);
    expect(index.find('alice', 'm1', at(2 * HOUR))).toEqual(job(1));
    expect(index.find('bob', 'm1', at(2 * HOUR))).toBeNull();
    expect(index.find('alice', 'm1', at(6 * HOUR))).toBeNull(); // older than the caller's window
    expect(index.find('alice', 'm2', at(0))).toBeUndefined();
    index.add('alice', 'm2', job(2), at(7 * HOUR));
    expect(index.find('alice', 'm2', at(2 * HOUR))).toEqual(job(2));
    index.remove('job-2');
    expect(index.find('alice', 'm2', at(2 * HOUR))).toBeNull();
  });

  it('after an incomplete load it is complete only from its oldest entry; evicting moves that up', () => {
    const index = new RecentClientMsgIds(24 * HOUR, 3);
    const rows = [3, 4, 5].map((n) => ({ ...job(n), owner: 'alice', clientMsgId: `m${n}`, createdAt: at(n * HOUR) }));
    index.load(rows, at(0), false);
    expect(index.find('alice', 'x', at(2 * HOUR))).toBeUndefined();
    expect(index.find('alice', 'x', at(3 * HOUR))).toBeNull();
    index.add('alice', 'm6', job(6), at(6 * HOUR)); // evicts m3, still in the window
    expect(index.find('alice', 'm3', at(3 * HOUR))).toBeUndefined();
    expect(index.find('alice', 'x', at(3 * HOUR + 1))).toBeNull();
    expect(index.find('alice', 'm4', at(3 * HOUR + 1))).toEqual(job(4));
  });

  it('drops what falls out of the window without losing completeness', () => {
    const index = new RecentClientMsgIds(2 * HOUR, 100);
    index.load([], at(0), true);
    index.add('alice', 'old', job(1), at(1 * HOUR));
    index.add('alice', 'new', job(2), at(4 * HOUR)); // `old` is 3 h older: dropped
    expect(index.find('alice', 'old', at(2 * HOUR))).toBeNull();
    expect(index.find('alice', 'new', at(2 * HOUR))).toEqual(job(2));
  });
});
