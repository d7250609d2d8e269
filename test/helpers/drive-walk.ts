import { createActor, fromCallback, fromPromise, SimulatedClock, type AnyStateMachine, type EventObject } from 'xstate';

/** Which of a machine's actors the test plays: promise actors settle and callback actors send on the walk's cue. */
export interface Scripted {
  promises: string[];
  callbacks: string[];
}

/**
 * Drives a generated walk against an actor of `machine` the way the events really arrive: an invoked
 * promise actor resolves (`xstate.done.actor.<id>`) or rejects (`xstate.error.actor.<id>`), a callback
 * actor sends (`infer.*`, `ping.*` by the live one of that kind; `call.*` by its slot's), the clock
 * moves (`xstate.after.*`), anything else is sent to the machine. Returns the state value after
 * `xstate.init` and after each event (as `JSON.stringify(snapshot.value)`).
 */
export async function driveWalk(machine: AnyStateMachine, scripted: Scripted, walk: { input: unknown; events: EventObject[] }): Promise<string[]> {
  const promises = new Map<string, { resolve: (value: unknown) => void; reject: (error: unknown) => void }>();
  const callbacks: Array<{ id: string; src: string; sendBack: (event: EventObject) => void }> = [];
  const actors: Record<string, unknown> = {};
  for (const src of scripted.promises) {
    actors[src] = fromPromise(({ self }) => new Promise((resolve, reject) => promises.set(self.id, { resolve, reject })));
  }
  for (const src of scripted.callbacks) {
    actors[src] = fromCallback(({ sendBack, self }) => {
      const entry = { id: self.id, src, sendBack };
      callbacks.push(entry);
      return () => callbacks.splice(callbacks.indexOf(entry), 1);
    });
  }
  const clock = new SimulatedClock();
  const actor = createActor(machine.provide({ actors } as never), { input: walk.input, clock });
  actor.subscribe({ error: () => {} });
  actor.start();
  const values = [JSON.stringify(actor.getSnapshot().value)];
  for (const event of walk.events) {
    deliver(event);
    // A settled promise reaches the machine a few microtasks later.
    await new Promise((resolve) => setImmediate(resolve));
    values.push(JSON.stringify(actor.getSnapshot().value));
  }
  actor.stop();
  return values;

  function deliver(event: EventObject): void {
    const e = event as EventObject & { output?: unknown; error?: unknown; slot?: number };
    const settled = /^xstate\.(done|error)\.actor\.(.+)$/.exec(e.type);
    if (settled && promises.has(settled[2]!)) {
      const promise = promises.get(settled[2]!)!;
      promises.delete(settled[2]!);
      if (settled[1] === 'done') promise.resolve(e.output);
      else promise.reject(e.error);
      return;
    }
    // One timer runs at a time in these machines: a day on the clock fires it.
    if (e.type.startsWith('xstate.after.')) return clock.increment(86_400_000);
    const from = e.type.startsWith('call.')
      ? callbacks.find((callback) => callback.id === `call:${e.slot}`)
      : e.type.startsWith('infer.') || e.type.startsWith('ping.')
        ? callbacks.findLast((callback) => callback.src === (e.type.startsWith('ping.') ? 'inferencePing' : 'infer'))
        : undefined;
    if (from) from.sendBack(event);
    else actor.send(event);
  }
}
