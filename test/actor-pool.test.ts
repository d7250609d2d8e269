import { assign, createActor, fromCallback, sendParent, sendTo, setup, type AnyActorRef, type AnyEventObject } from 'xstate';
import { describe, expect, it } from 'vitest';
import { createActorPool, type PoolCommand } from '../src/machines/actor-pool.js';

/**
 * The actor pool: members live in the parent's actor system (`sendParent` and `sendBack` reach the parent,
 * which gets `xstate.done.actor.<id>` and `xstate.error.actor.<id>` for them), sends to a member that is
 * gone are dropped, `pool.stop` really stops a member (status `stopped`, cleanup run, timers and delayed
 * events cancelled — through XState's internal `_stop()`, which these tests pin) and stopping the pool
 * stops every member.
 */

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Answers `ping` with `pong` to its parent; `finish` ends it with its name and ping count as output. */
const echo = setup({
  types: {
    input: {} as { name: string },
    context: {} as { name: string; pings: number },
    events: {} as { type: 'ping' } | { type: 'finish' },
    output: {} as { name: string; pings: number },
  },
}).createMachine({
  context: ({ input }) => ({ name: input.name, pings: 0 }),
  initial: 'live',
  states: {
    live: {
      on: {
        ping: { actions: [assign({ pings: ({ context }) => context.pings + 1 }), sendParent(({ context }) => ({ type: 'pong', from: context.name, n: context.pings }))] },
        finish: 'finished',
      },
    },
    finished: { type: 'final' },
  },
  output: ({ context }) => ({ name: context.name, pings: context.pings }),
});

/** Sends its parent a `tick` every `every` ms; its cleanup records its id. */
const ticker = fromCallback<AnyEventObject, { every: number; cleanedUp: string[] }>(({ input, self, sendBack }) => {
  const timer = setInterval(() => sendBack({ type: 'tick', from: self.id }), input.every);
  return () => {
    clearInterval(timer);
    input.cleanedUp.push(self.id);
  };
});

/** Sends its parent `late` after 30 ms (a delayed transition, scheduled in the system's scheduler). */
const delayed = setup({}).createMachine({
  initial: 'waiting',
  states: {
    waiting: { after: { 30: { target: 'sent', actions: sendParent(({ self }) => ({ type: 'late', from: self.id })) } } },
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

const logics = { echo, ticker, delayed, crasher };
type Command = PoolCommand<typeof logics>;

/** What the parent received from its members, errors as their message. */
type Received = { type: string; [key: string]: unknown };

const parentMachine = setup({
  types: { context: {} as { received: Received[] }, events: {} as AnyEventObject },
  actors: { pool: createActorPool(logics) },
}).createMachine({
  context: { received: [] },
  initial: 'on',
  states: {
    on: {
      invoke: { id: 'pool', src: 'pool', input: ({ self }) => ({ parent: self }) },
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
          return [...context.received, error === undefined ? rest : { ...rest, error: error instanceof Error ? error.message : String(error) }];
        },
      }),
    },
  },
});

/** A running parent with its pool; every actor created in its system is kept by id (through the inspector). */
function startParent() {
  const actors = new Map<string, AnyActorRef>();
  const errors: unknown[] = [];
  const parent = createActor(parentMachine, {
    inspect: (event) => {
      if (event.type === '@xstate.actor') actors.set((event.actorRef as AnyActorRef).id, event.actorRef as AnyActorRef);
    },
  });
  parent.subscribe({ error: (error) => errors.push(error) });
  parent.start();
  const command = (c: Command): void => parent.send({ type: 'command', command: c });
  const received = (): Received[] => parent.getSnapshot().context.received;
  const member = (id: string): AnyActorRef => {
    const actor = actors.get(id);
    if (!actor) throw new Error(`no actor "${id}" was created`);
    return actor;
  };
  return { parent, command, received, member, errors };
}

describe('actor pool', () => {
  it("creates members in the parent's system: sendParent reaches the parent, a final state sends it xstate.done.actor.<id>", () => {
    const { parent, command, received, member, errors } = startParent();
    command({ type: 'pool.spawn', src: 'echo', id: 'a', input: { name: 'alpha' } });
    command({ type: 'pool.spawn', src: 'echo', id: 'b', input: { name: 'beta' } });
    expect(member('a').system).toBe(parent.system);
    expect(member('a').getSnapshot().status).toBe('active');

    command({ type: 'pool.send', id: 'a', event: { type: 'ping' } });
    command({ type: 'pool.send', id: 'b', event: { type: 'ping' } });
    command({ type: 'pool.send', id: 'a', event: { type: 'ping' } });
    command({ type: 'pool.send', id: 'a', event: { type: 'finish' } });
    expect(received()).toEqual([
      { type: 'pong', from: 'alpha', n: 1 },
      { type: 'pong', from: 'beta', n: 1 },
      { type: 'pong', from: 'alpha', n: 2 },
      { type: 'xstate.done.actor.a', actorId: 'a', output: { name: 'alpha', pings: 2 } },
    ]);
    expect(member('a').getSnapshot().status).toBe('done');
    expect(member('b').getSnapshot().status).toBe('active');
    // The members are not the parent's children: its snapshot holds the pool only.
    expect(Object.keys(parent.getSnapshot().children)).toEqual(['pool']);
    expect(errors).toEqual([]);
    parent.stop();
  });

  it('sends the parent xstate.error.actor.<id> for a member that throws on start or on an event; the others carry on', () => {
    const { parent, command, received, member, errors } = startParent();
    command({ type: 'pool.spawn', src: 'echo', id: 'a', input: { name: 'alpha' } });
    command({ type: 'pool.spawn', src: 'crasher', id: 'at-start', input: { onStart: true } });
    command({ type: 'pool.spawn', src: 'crasher', id: 'later', input: { onStart: false } });
    expect(received()).toEqual([{ type: 'xstate.error.actor.at-start', actorId: 'at-start', error: 'crash on start' }]);
    expect(member('later').getSnapshot().status).toBe('active');

    command({ type: 'pool.send', id: 'later', event: { type: 'boom' } });
    command({ type: 'pool.send', id: 'a', event: { type: 'ping' } });
    expect(received().slice(1)).toEqual([
      { type: 'xstate.error.actor.later', actorId: 'later', error: 'crash on boom' },
      { type: 'pong', from: 'alpha', n: 1 },
    ]);
    expect(member('later').getSnapshot().status).toBe('error');
    expect(parent.getSnapshot().status).toBe('active');
    expect(parent.getSnapshot().children.pool?.getSnapshot().status).toBe('active');
    expect(errors).toEqual([]);
    parent.stop();
  });

  it('drops sends to a member that is stopped or never was, and takes a stopped id again', () => {
    const { parent, command, received, member, errors } = startParent();
    command({ type: 'pool.spawn', src: 'echo', id: 'a', input: { name: 'first' } });
    command({ type: 'pool.spawn', src: 'echo', id: 'b', input: { name: 'beta' } });
    command({ type: 'pool.stop', id: 'a' });
    command({ type: 'pool.send', id: 'b', event: { type: 'finish' } });
    command({ type: 'pool.send', id: 'a', event: { type: 'ping' } });
    command({ type: 'pool.send', id: 'nobody', event: { type: 'ping' } });
    command({ type: 'pool.stop', id: 'nobody' });
    expect(received()).toEqual([{ type: 'xstate.done.actor.b', actorId: 'b', output: { name: 'beta', pings: 0 } }]);
    expect(member('a').getSnapshot().status).toBe('stopped');

    command({ type: 'pool.spawn', src: 'echo', id: 'a', input: { name: 'second' } });
    command({ type: 'pool.send', id: 'a', event: { type: 'ping' } });
    expect(received().slice(1)).toEqual([{ type: 'pong', from: 'second', n: 1 }]);
    expect(parent.getSnapshot().children.pool?.getSnapshot().status).toBe('active');
    expect(errors).toEqual([]);
    parent.stop();
  });

  it('errors (xstate.error.actor.pool) when asked for a second member with a live id', () => {
    const { parent, command, received, errors } = startParent();
    command({ type: 'pool.spawn', src: 'echo', id: 'a', input: { name: 'alpha' } });
    command({ type: 'pool.spawn', src: 'echo', id: 'a', input: { name: 'again' } });
    expect(received()).toEqual([{ type: 'xstate.error.actor.pool', actorId: 'pool', error: 'actor pool: "a" already exists' }]);
    expect(errors).toEqual([]);
    parent.stop();
  });

  it('stops a member on pool.stop: status stopped, cleanup run, its interval and delayed events no longer fire', async () => {
    const { parent, command, received, member, errors } = startParent();
    const cleanedUp: string[] = [];
    command({ type: 'pool.spawn', src: 'ticker', id: 't', input: { every: 5, cleanedUp } });
    command({ type: 'pool.spawn', src: 'delayed', id: 'd-stopped', input: undefined });
    command({ type: 'pool.spawn', src: 'delayed', id: 'd-kept', input: undefined });
    await sleep(20);
    const ticks = received().filter((e) => e.type === 'tick').length;
    expect(ticks).toBeGreaterThan(0);

    command({ type: 'pool.stop', id: 't' });
    command({ type: 'pool.stop', id: 'd-stopped' });
    expect(member('t').getSnapshot().status).toBe('stopped');
    expect(member('d-stopped').getSnapshot().status).toBe('stopped');
    expect(cleanedUp).toEqual(['t']);

    await sleep(60);
    expect(received().filter((e) => e.type === 'tick')).toHaveLength(ticks);
    // The delayed event fires for the member left running, not for the stopped one.
    expect(received().filter((e) => e.type === 'late')).toEqual([{ type: 'late', from: 'd-kept' }]);
    expect(errors).toEqual([]);
    parent.stop();
  });

  it.each([
    ['leaves the state that invokes it', (parent: ReturnType<typeof startParent>['parent']) => parent.send({ type: 'drop' })],
    ['is stopped (root stop)', (parent: ReturnType<typeof startParent>['parent']) => parent.stop()],
  ])('stops every member when its parent %s', async (_, stopPool) => {
    const { parent, command, received, member, errors } = startParent();
    const cleanedUp: string[] = [];
    command({ type: 'pool.spawn', src: 'ticker', id: 't1', input: { every: 5, cleanedUp } });
    command({ type: 'pool.spawn', src: 'ticker', id: 't2', input: { every: 5, cleanedUp } });
    command({ type: 'pool.spawn', src: 'echo', id: 'a', input: { name: 'alpha' } });
    command({ type: 'pool.spawn', src: 'delayed', id: 'd', input: undefined });
    await sleep(20);
    expect(received().filter((e) => e.type === 'tick').length).toBeGreaterThan(0);

    stopPool(parent);
    expect(member('pool').getSnapshot().status).toBe('stopped');
    expect(['t1', 't2', 'a', 'd'].map((id) => member(id).getSnapshot().status)).toEqual(['stopped', 'stopped', 'stopped', 'stopped']);
    expect(cleanedUp.toSorted()).toEqual(['t1', 't2']);

    const after = received().length;
    await sleep(60);
    // Nothing reaches the parent any more (on a dropped pool the parent is still running and would record it).
    expect(received()).toHaveLength(after);
    expect(errors).toEqual([]);
    parent.stop();
  });
});
