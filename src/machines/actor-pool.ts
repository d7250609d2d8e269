import { createActor, fromCallback, type AnyActorLogic, type AnyActorRef, type AnyEventObject, type InputFrom } from 'xstate';

/** Commands to an actor pool. `src` names one of the pool's logics. */
export type PoolCommand<TLogics extends Record<string, AnyActorLogic>> =
  | { [K in keyof TLogics & string]: { type: 'pool.spawn'; src: K; id: string; input: InputFrom<TLogics[K]> } }[keyof TLogics & string]
  | { type: 'pool.send'; id: string; event: AnyEventObject }
  | { type: 'pool.stop'; id: string };

/** Input of a pool: the actor its members report to (`sendParent`, done and error events). */
export interface PoolInput {
  parent: AnyActorRef;
}

/**
 * Many short-lived children of one actor, kept out of its snapshot.
 *
 * XState copies `snapshot.children` on every `spawnChild` and `stopChild`, so a parent with n children
 * pays O(n) per spawn and per stop: with a thousand jobs in flight that was over a millisecond per job.
 * A pool creates each member with the pool's `parent` as its parent — the same actor system, so the
 * inspector sees it, `sendParent` reaches the parent and the parent gets its `xstate.done.actor.<id>` and
 * `xstate.error.actor.<id>` events, as for a spawned child — and keeps the members in a Map. Sends to a
 * member that is gone are dropped (XState would throw inside the sender's transition). Stopping the pool
 * stops every member.
 */
export function createActorPool<TLogics extends Record<string, AnyActorLogic>>(logics: TLogics) {
  return fromCallback<PoolCommand<TLogics>, PoolInput>(({ input, receive }) => {
    const members = new Map<string, AnyActorRef>();
    receive((command) => {
      switch (command.type) {
        case 'pool.spawn': {
          if (members.has(command.id)) throw new Error(`actor pool: "${command.id}" already exists`);
          const actor = createActor(logics[command.src] as AnyActorLogic, { id: command.id, parent: input.parent, input: command.input });
          members.set(command.id, actor);
          actor.start();
          return;
        }
        case 'pool.send':
          members.get(command.id)?.send(command.event);
          return;
        case 'pool.stop': {
          const actor = members.get(command.id);
          members.delete(command.id);
          if (actor) stopMember(actor);
          return;
        }
      }
    });
    return () => {
      for (const actor of members.values()) stopMember(actor);
      members.clear();
    };
  });
}

/**
 * Stops a member the way XState stops a child (`stopChild` calls `_stop()`): the public `stop()` refuses
 * actors that have a parent. The stop is queued behind the events already in the member's mailbox. The
 * pool's tests fail if this internal ever goes away.
 */
function stopMember(actor: AnyActorRef): void {
  (actor as unknown as { _stop(): void })._stop();
}
