import { createActor, fromCallback, fromPromise } from 'xstate';
import { backendMachine, type PingInput, type ProbeInput, type ProbeOutput, type WatcherCommand } from '../../src/machines/backend-machine.js';
import type { BackendReply } from '../../src/machines/backend-protocol.js';
import { inferenceSlotMachine } from '../../src/machines/inference-slot-machine.js';

const noop = (): void => {};

/**
 * The backend machine with inert implementations, for walking its graph: nothing runs, nothing is sent
 * anywhere. The real behaviour is what the tests then drive along the walked paths.
 */
export const walkableBackendMachine = backendMachine.provide({
  actors: {
    inferenceSlot: inferenceSlotMachine.provide({
      actors: { callBackend: fromCallback(noop) },
      actions: { reportActivity: noop, releaseCompleted: noop, releaseFailed: noop, releaseCancelled: noop },
    }),
    probeBackend: fromPromise<ProbeOutput, ProbeInput>(() => new Promise<ProbeOutput>(noop)),
    inferencePing: fromCallback<BackendReply, PingInput>(noop),
    requesterWatcher: fromCallback<WatcherCommand>(noop),
  },
});

/** A started actor that ignores everything: a reply address for walked requests. */
export const inertRequester = createActor(fromCallback(noop)).start();
