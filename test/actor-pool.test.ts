import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { assign, createActor, fromCallback, sendTo, setup, type AnyActorRef, type AnyEventObject, type InspectionEvent } from 'xstate';
import { createActorPool, type PoolCommand } from '../src/machines/actor-pool.js';

/**
 * The actor pool: every member is a root actor, an actor system of its own (not the owner's, not another
 * member's), so it has no parent: it reports to its owner through a ref in its input, its delayed events
 * live in its own scheduler, and nothing like `xstate.done.actor.<id>` reaches the owner. A member that
 * throws is removed and the owner gets `pool.failed` with its id and error; sends to a member that is gone
 * are dropped; `pool.stop` stops a member (status `stopped`, cleanup run, timers cancelled); stopping the
 * pool stops every member; the pool's `inspect` option sees every member's events.
 */

/** Every member's input has the ref it reports to. */
interface Reports {
  owner: AnyActorRef;
}

/** Answers `ping` with `pong` to its owner; `finish` ends it with its name and ping count as output. */
const echo = setup({
  types: {
    input: {} as { name: string } & Reports,
    context: {} as { name: string; pings: number } & Reports,
    events: {} as { type: 'ping' } | { type: 'finish' },
    output: {} as { name: string; pings: number },
  },
}).createMachine({
  context: ({ input }) => ({ name: input.name, pings: 0, owner: input.owner }),
  initial: 'live',
  states: {
    live: {
      on: {
        ping: {
          actions: [
            assign({ pings: ({ context }) => context.pings + 1 }),
            sendTo(({ context }) => context.owner, ({ context }) => ({ type: 'pong', from: context.name, n: context.pings })),
          ],
        },
        finish: 'finished',
      },
    },
    finished: { type: 'final' },
  },
  output: ({ context }) => ({ name: context.name, pings: context.pings }),
});

/**
 * Sends its owner a `tick` every `every` ms; its cleanup records its id. It also tries `sendBack`, which
 * has nowhere to go for a root actor: no `back` may ever reach the owner.
 */
const ticker = fromCallback<AnyEventObject, { every: number; cleanedUp: string[] } & Reports>(({ input, self, sendBack }) => {
  const timer = setInterval(() => {
    input.owner.send({ type: 'tick', from: self.id });
    sendBack({ type: 'back', from: self.id });
  }, input.every);
  return () => {
    clearInterval(timer);
    input.cleanedUp.push(self.id);
  };
});

/** Sends its owner `late` after 30 ms (a delayed transition, scheduled in its system's scheduler). */
const delayed = setup({
  types: { input: {} as Reports, context: {} as Reports },
}).createMachine({
  context: ({ input }) => ({ owner: input.owner }),
  initial: 'waiting',
  states: {
    waiting: { after: { 30: { target: 'sent', actions: sendTo(({ context }) => context.owner, ({ self }) => ({ type: 'late', from: self.id })) } } },
    sent: {},
  },
});

/** Throws on start when told to, otherwise on `boom`. */
const crasher = setup({
  types: { input: {} as { onStart: boolean }, context: {} as { onStart: boolean }, events: {} as { type: 'boom' } },
  actions: {
    crash: (_, params: { when: string }) => {
      throw new Error(`crash ${params.when}`);
    },
  },
  guards: { onStart: ({ context }) => context.onStart },
}).createMachine({
  context: ({ input }) => input,
  initial: 'check',
  states: {
    check: { always: [{ guard: 'onStart', target: 'crashing' }, { target: 'live' }] },
    crashing: { entry: { type: 'crash', params: { when: 'on start' } } },
    live: { on: { boom: { actions: { type: 'crash', params: { when: 'on boom' } } } } },
  },
});

/** A callback whose start throws. */
const brokenCallback = fromCallback(() => {
  throw new Error('callback crash on start');
});

const logics = { echo, ticker, delayed, crasher, brokenCallback };
type Command = PoolCommand<typeof logics>;

/** What the owner received, errors as `<name>: <message>`. */
type Received = { type: string; [key: string]: unknown };

/** The id of an inspection event's actor (typed as the structural `ActorRefLike`). */
const idOf = (ref: unknown): string | undefined => (ref as AnyActorRef | undefined)?.id;

const describeError = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : `not an Error: ${String(error)}`);

const ownerMachine = setup({
  types: { context: {} as { received: Received[] }, events: {} as AnyEventObject },
  actors: { pool: createActorPool(logics) },
}).createMachine({
  context: { received: [] },
  initial: 'on',
  states: {
    on: {
      invoke: { id: 'pool', src: 'pool' },
      on: {
        command: { actions: sendTo('pool', ({ event }) => event.command as Command) },
        drop: 'off',
      },
    },
    off: {},
  },
  on: {
    '*': {
      actions: assign({
        received: ({ context, event }) => {
          const { error, ...rest } = event;
          return [...context.received, error === undefined ? rest : { ...rest, error: describeError(error) }];
        },
      }),
    },
  },
});

/**
 * A running owner (id `owner`) with its pool. The owner's own inspector records what its system sees; the
 * pool's `inspect` option records what the members' systems see, and keeps every member by id.
 */
function startOwner() {
  const ownerInspections: InspectionEvent[] = [];
  const memberInspections: InspectionEvent[] = [];
  const members = new Map<string, AnyActorRef>();
  const machine = ownerMachine.provide({
    actors: {
      pool: createActorPool(logics, {
        inspect: (event) => {
          memberInspections.push(event);
          if (event.type === '@xstate.actor') members.set(idOf(event.actorRef)!, event.actorRef as AnyActorRef);
        },
      }),
    },
  });
  const owner = createActor(machine, { id: 'owner', inspect: (event) => ownerInspections.push(event) });
  const errors: unknown[] = [];
  owner.subscribe({ error: (error) => errors.push(error) });
  owner.start();
  onTestFinished(() => {
    owner.stop();
  });
  const command = (c: Command): void => owner.send({ type: 'command', command: c });
  const received = (): Received[] => owner.getSnapshot().context.received;
  const member = (id: string): AnyActorRef => {
    const actor = members.get(id);
    if (!actor) throw new Error(`no member "${id}" was created`);
    return actor;
  };
  const pool = (): AnyActorRef => {
    const actor = ownerInspections.find((event) => event.type === '@xstate.actor' && idOf(event.actorRef) === 'pool')?.actorRef;
    if (!actor) throw new Error('no pool was created');
    return actor as AnyActorRef;
  };
  const count = (type: string, from: string): number => received().filter((e) => e.type === type && e.from === from).length;
  return { owner, command, received, member, pool, count, errors, ownerInspections, memberInspections };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('actor pool', () => {
  it('creates every member as a root actor with a system of its own; members report through the ref in their input', () => {
    const { owner, command, received, member, ownerInspections, errors } = startOwner();
    command({ type: 'pool.spawn', src: 'echo', id: 'a', input: { name: 'alpha', owner } });
    command({ type: 'pool.spawn', src: 'echo', id: 'b', input: { name: 'beta', owner } });
    const [a, b] = [member('a'), member('b')];
    expect(a.id).toBe('a');
    expect(a.getSnapshot().status).toBe('active');
    expect(a.system).not.toBe(owner.system);
    expect(b.system).not.toBe(owner.system);
    expect(a.system).not.toBe(b.system);
    // The owner's system never saw them: it holds the owner and the pool only, and so does its snapshot.
    expect(ownerInspections.filter((e) => e.type === '@xstate.actor').map((e) => idOf(e.actorRef))).toEqual(['owner', 'pool']);
    expect(Object.keys(owner.getSnapshot().children)).toEqual(['pool']);

    command({ type: 'pool.send', id: 'a', event: { type: 'ping' } });
    command({ type: 'pool.send', id: 'b', event: { type: 'ping' } });
    command({ type: 'pool.send', id: 'a', event: { type: 'ping' } });
    command({ type: 'pool.send', id: 'a', event: { type: 'finish' } });
    // No parent: a final state sends the owner nothing (no xstate.done.actor.a).
    expect(received()).toEqual([
      { type: 'pong', from: 'alpha', n: 1 },
      { type: 'pong', from: 'beta', n: 1 },
      { type: 'pong', from: 'alpha', n: 2 },
    ]);
    expect(a.getSnapshot().status).toBe('done');
    expect(a.getSnapshot().output).toEqual({ name: 'alpha', pings: 2 });
    expect(b.getSnapshot().status).toBe('active');
    expect(errors).toEqual([]);
    owner.stop();
  });

  it("keeps a member's delayed events in the member's own system, and pool.stop cancels them", () => {
    vi.useFakeTimers();
    const { owner, command, received, member, errors } = startOwner();
    command({ type: 'pool.spawn', src: 'delayed', id: 'd-stopped', input: { owner } });
    command({ type: 'pool.spawn', src: 'delayed', id: 'd-kept', input: { owner } });
    const scheduled = (actor: AnyActorRef) =>
      Object.values(actor.system.getSnapshot()._scheduledEvents).map((e) => ({ source: e.source.id, target: e.target.id, delay: e.delay }));
    expect(scheduled(owner)).toEqual([]);
    expect(scheduled(member('d-stopped'))).toEqual([{ source: 'd-stopped', target: 'd-stopped', delay: 30 }]);
    expect(scheduled(member('d-kept'))).toEqual([{ source: 'd-kept', target: 'd-kept', delay: 30 }]);

    command({ type: 'pool.stop', id: 'd-stopped' });
    expect(member('d-stopped').getSnapshot().status).toBe('stopped');
    expect(scheduled(member('d-stopped'))).toEqual([]);
    expect(scheduled(member('d-kept'))).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(1);

    vi.advanceTimersByTime(29);
    expect(received()).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(received()).toEqual([{ type: 'late', from: 'd-kept' }]);
    vi.advanceTimersByTime(100);
    // The stopped member's event never comes.
    expect(received()).toEqual([{ type: 'late', from: 'd-kept' }]);
    expect(scheduled(member('d-kept'))).toEqual([]);
    expect(member('d-kept').getSnapshot().value).toBe('sent');
    expect(errors).toEqual([]);
    owner.stop();
  });

  it('sends the owner pool.failed for a member that throws on start or on an event; the member is gone, the others carry on', () => {
    const { owner, command, received, member, pool, errors } = startOwner();
    command({ type: 'pool.spawn', src: 'echo', id: 'a', input: { name: 'alpha', owner } });
    command({ type: 'pool.spawn', src: 'crasher', id: 'at-start', input: { onStart: true } });
    command({ type: 'pool.spawn', src: 'brokenCallback', id: 'callback-at-start', input: undefined });
    command({ type: 'pool.spawn', src: 'crasher', id: 'later', input: { onStart: false } });
    expect(received()).toEqual([
      { type: 'pool.failed', id: 'at-start', error: 'Error: crash on start' },
      { type: 'pool.failed', id: 'callback-at-start', error: 'Error: callback crash on start' },
    ]);
    expect(member('at-start').getSnapshot().status).toBe('error');
    expect((member('at-start').getSnapshot().error as Error).message).toBe('crash on start');
    expect(member('callback-at-start').getSnapshot().status).toBe('error');
    expect(member('later').getSnapshot().status).toBe('active');

    command({ type: 'pool.send', id: 'later', event: { type: 'boom' } });
    command({ type: 'pool.send', id: 'a', event: { type: 'ping' } });
    expect(received().slice(2)).toEqual([
      { type: 'pool.failed', id: 'later', error: 'Error: crash on boom' },
      { type: 'pong', from: 'alpha', n: 1 },
    ]);
    expect(member('later').getSnapshot().status).toBe('error');
    expect(member('a').getSnapshot().status).toBe('active');

    // Sends and stops for the failed members are dropped (no throw, nothing reaches the owner).
    command({ type: 'pool.send', id: 'later', event: { type: 'boom' } });
    command({ type: 'pool.send', id: 'at-start', event: { type: 'boom' } });
    command({ type: 'pool.stop', id: 'callback-at-start' });
    expect(received()).toHaveLength(4);
    expect(pool().getSnapshot().status).toBe('active');
    expect(owner.getSnapshot().status).toBe('active');

    // A failed member's id is free again.
    command({ type: 'pool.spawn', src: 'echo', id: 'later', input: { name: 'reborn', owner } });
    command({ type: 'pool.send', id: 'later', event: { type: 'ping' } });
    expect(received().slice(4)).toEqual([{ type: 'pong', from: 'reborn', n: 1 }]);
    expect(member('later').getSnapshot().status).toBe('active');
    expect(pool().getSnapshot().status).toBe('active');
    expect(owner.getSnapshot().status).toBe('active');
    expect(errors).toEqual([]);
    owner.stop();
  });

  it('drops sends to a member that is stopped or never was, and takes a stopped id again', () => {
    const { owner, command, received, member, pool, errors } = startOwner();
    command({ type: 'pool.spawn', src: 'echo', id: 'a', input: { name: 'first', owner } });
    command({ type: 'pool.spawn', src: 'echo', id: 'b', input: { name: 'beta', owner } });
    const first = member('a');
    command({ type: 'pool.stop', id: 'a' });
    command({ type: 'pool.send', id: 'b', event: { type: 'finish' } });
    command({ type: 'pool.send', id: 'a', event: { type: 'ping' } });
    command({ type: 'pool.send', id: 'nobody', event: { type: 'ping' } });
    command({ type: 'pool.stop', id: 'nobody' });
    expect(received()).toEqual([]);
    expect(first.getSnapshot().status).toBe('stopped');
    expect(member('b').getSnapshot().status).toBe('done');

    command({ type: 'pool.spawn', src: 'echo', id: 'a', input: { name: 'second', owner } });
    command({ type: 'pool.send', id: 'a', event: { type: 'ping' } });
    expect(received()).toEqual([{ type: 'pong', from: 'second', n: 1 }]);
    expect(member('a')).not.toBe(first);
    expect(first.getSnapshot().status).toBe('stopped');
    expect(pool().getSnapshot().status).toBe('active');
    expect(errors).toEqual([]);
    owner.stop();
  });

  it('errors (xstate.error.actor.pool) when asked for a second member with a live id, stopping its members first', () => {
    const { owner, command, received, pool, member, memberInspections, errors } = startOwner();
    command({ type: 'pool.spawn', src: 'echo', id: 'a', input: { name: 'alpha', owner } });
    const first = member('a');
    command({ type: 'pool.spawn', src: 'echo', id: 'a', input: { name: 'again', owner } });
    // A failed pool runs no cleanup of its own: its members must not outlive it.
    expect(first.getSnapshot().status).toBe('stopped');
    expect(received()).toEqual([{ type: 'xstate.error.actor.pool', actorId: 'pool', error: 'Error: actor pool: "a" already exists' }]);
    expect(pool().getSnapshot().status).toBe('error');
    // The second was never created.
    expect(memberInspections.filter((e) => e.type === '@xstate.actor').map((e) => idOf(e.actorRef))).toEqual(['a']);
    expect(owner.getSnapshot().status).toBe('active');
    expect(errors).toEqual([]);
    owner.stop();
  });

  it('stops a member on pool.stop: status stopped, cleanup run, its interval no longer fires', () => {
    vi.useFakeTimers();
    const { owner, command, received, member, count, errors } = startOwner();
    const cleanedUp: string[] = [];
    command({ type: 'pool.spawn', src: 'ticker', id: 't', input: { every: 5, cleanedUp, owner } });
    command({ type: 'pool.spawn', src: 'ticker', id: 'u', input: { every: 5, cleanedUp, owner } });
    vi.advanceTimersByTime(20);
    expect([count('tick', 't'), count('tick', 'u')]).toEqual([4, 4]);

    command({ type: 'pool.stop', id: 't' });
    expect(member('t').getSnapshot().status).toBe('stopped');
    expect(member('u').getSnapshot().status).toBe('active');
    expect(cleanedUp).toEqual(['t']);
    expect(vi.getTimerCount()).toBe(1);

    vi.advanceTimersByTime(20);
    expect([count('tick', 't'), count('tick', 'u')]).toEqual([4, 8]);
    // A root member's sendBack goes nowhere.
    expect(received().filter((e) => e.type !== 'tick')).toEqual([]);
    expect(errors).toEqual([]);

    owner.stop();
    expect(cleanedUp).toEqual(['t', 'u']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it.each([
    ['leaves the state that invokes it', (owner: ReturnType<typeof startOwner>['owner']) => owner.send({ type: 'drop' })],
    ['is stopped (root stop)', (owner: ReturnType<typeof startOwner>['owner']) => owner.stop()],
  ])('stops every member when its owner %s', (_, stopPool) => {
    vi.useFakeTimers();
    const { owner, command, received, member, pool, errors } = startOwner();
    const cleanedUp: string[] = [];
    command({ type: 'pool.spawn', src: 'ticker', id: 't1', input: { every: 5, cleanedUp, owner } });
    command({ type: 'pool.spawn', src: 'ticker', id: 't2', input: { every: 5, cleanedUp, owner } });
    command({ type: 'pool.spawn', src: 'echo', id: 'a', input: { name: 'alpha', owner } });
    command({ type: 'pool.spawn', src: 'delayed', id: 'd', input: { owner } });
    vi.advanceTimersByTime(20);
    expect(received().filter((e) => e.type === 'tick')).toHaveLength(8);
    // Two intervals and the delayed event.
    expect(vi.getTimerCount()).toBe(3);

    stopPool(owner);
    expect(pool().getSnapshot().status).toBe('stopped');
    expect(['t1', 't2', 'a', 'd'].map((id) => member(id).getSnapshot().status)).toEqual(['stopped', 'stopped', 'stopped', 'stopped']);
    expect(cleanedUp.toSorted()).toEqual(['t1', 't2']);
    expect(vi.getTimerCount()).toBe(0);

    const after = received().length;
    vi.advanceTimersByTime(60);
    // Nothing reaches the owner any more (when the pool is dropped the owner is still running and would record it).
    expect(received()).toHaveLength(after);
    expect(received().filter((e) => e.type === 'late')).toEqual([]);
    expect(errors).toEqual([]);
    owner.stop();
  });

  it("passes its inspect option to every member: one inspector sees every member's events, the owner's does not", () => {
    const { owner, command, member, memberInspections, ownerInspections, errors } = startOwner();
    command({ type: 'pool.spawn', src: 'echo', id: 'a', input: { name: 'alpha', owner } });
    command({ type: 'pool.spawn', src: 'echo', id: 'b', input: { name: 'beta', owner } });
    command({ type: 'pool.send', id: 'a', event: { type: 'ping' } });
    command({ type: 'pool.send', id: 'b', event: { type: 'finish' } });

    const memberIds = new Set(['a', 'b']);
    const events = memberInspections.filter((e) => e.type === '@xstate.event');
    expect(events.filter((e) => memberIds.has(idOf(e.actorRef)!)).map((e) => [idOf(e.actorRef), e.event.type])).toEqual([
      ['a', 'xstate.init'],
      ['b', 'xstate.init'],
      ['a', 'ping'],
      ['b', 'finish'],
    ]);
    // Everything a member sends goes through its own system, its report to the owner too.
    expect(events.map((e) => [idOf(e.sourceRef), idOf(e.actorRef), e.event.type])).toEqual([
      [undefined, 'a', 'xstate.init'],
      [undefined, 'b', 'xstate.init'],
      [undefined, 'a', 'ping'],
      ['a', 'owner', 'pong'],
      [undefined, 'b', 'finish'],
    ]);
    // Each from its member's own system.
    expect(events.map((e) => e.rootId)).toEqual(['a', 'b', 'a', 'a', 'b'].map((id) => member(id).sessionId));
    expect(new Set(events.map((e) => e.rootId)).has(owner.sessionId)).toBe(false);
    const snapshotsOfB = memberInspections.flatMap((e) => (e.type === '@xstate.snapshot' && idOf(e.actorRef) === 'b' ? [e.snapshot.status] : []));
    expect(snapshotsOfB.at(-1)).toBe('done');
    // The owner's inspector sees the commands to the pool, nothing inside a member's system.
    expect(ownerInspections.some((e) => memberIds.has(idOf(e.actorRef)!))).toBe(false);
    expect(errors).toEqual([]);
    owner.stop();
  });
});
