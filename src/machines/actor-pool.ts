import { createActor, fromCallback, type AnyActorLogic, type AnyActorRef, type AnyEventObject, type InputFrom, type InspectionEvent } from 'xstate';

/** Commands to an actor pool. `src` names one of the pool's logics. */
export type PoolCommand<TLogics extends Record<string, AnyActorLogic>> =
  | { [K in keyof TLogics & string]: { type: 'pool.spawn'; src: K; id: string; input: InputFrom<TLogics[K]> } }[keyof TLogics & string]
  | { type: 'pool.send'; id: string; event: AnyEventObject }
  | { type: 'pool.stop'; id: string };

/** Sent back to the pool's owner when a member fails (throws); the member is gone. */
export interface PoolMemberFailedEvent {
  type: 'pool.failed';
  id: string;
  error: unknown;
}

/** Options of {@link createActorPool}. */
export interface ActorPoolOptions {
  /** Sees every member's actor system (the owner's inspector, so one inspector sees everything). */
  inspect?: (event: InspectionEvent) => void;
}

/**
 * Many short-lived actors owned by one machine, each an actor system of its own.
 *
 * Spawned children share their parent's system, and XState does work in proportion to the system on
 * every spawn and stop: it copies `snapshot.children`, and it scans every delayed event of the system
 * to cancel the stopped actor's. With a thousand jobs in flight (a heartbeat timer each) that was over a
 * millisecond per job. Pool members are root actors instead: a member reports to its owner through a
 * ref in its input (not `sendParent`), its timers live in its own scheduler, and a failure comes back
 * to the owner as `pool.failed`. Sends to a member that is gone are dropped (XState would throw inside
 * the sender's transition). Stopping the pool stops every member.
 */
export function createActorPool<TLogics extends Record<string, AnyActorLogic>>(logics: TLogics, options: ActorPoolOptions = {}) {
  return fromCallback<PoolCommand<TLogics>>(({ receive, sendBack }) => {
    const members = new Map<string, AnyActorRef>();
    const stopAll = (): void => {
      for (const actor of members.values()) actor.stop();
      members.clear();
    };
    receive((command) => {
      switch (command.type) {
        case 'pool.spawn': {
          if (members.has(command.id)) {
            // A bug in the owner. The pool fails; its members must not outlive it (XState runs no
            // cleanup for a callback actor that throws).
            stopAll();
            throw new Error(`actor pool: "${command.id}" already exists`);
          }
          const actor = createActor(logics[command.src] as AnyActorLogic, {
            id: command.id,
            input: command.input,
            ...(options.inspect ? { inspect: options.inspect } : {}),
          });
          members.set(command.id, actor);
          actor.subscribe({
            error: (error) => {
              if (members.get(command.id) === actor) members.delete(command.id);
              sendBack({ type: 'pool.failed', id: command.id, error } satisfies PoolMemberFailedEvent);
            },
          });
          actor.start();
          return;
        }
        case 'pool.send':
          members.get(command.id)?.send(command.event);
          return;
        case 'pool.stop': {
          const actor = members.get(command.id);
          members.delete(command.id);
          actor?.stop();
          return;
        }
      }
    });
    return stopAll;
  });
}
