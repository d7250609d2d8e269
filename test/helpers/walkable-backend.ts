import { createActor, fromCallback, fromPromise } from 'xstate';
import { backendMachine, type CallBackendInput, type WatcherCommand } from '../../src/machines/backend-machine.js';
import type { BackendReply } from '../../src/machines/backend-protocol.js';
import { healthMachine, type PingInput, type ProbeInput, type ProbeOutput } from '../../src/machines/health-machine.js';
import type { CallCommand } from '../../src/machines/mailbox-plan.js';

const noop = (): void => {};

/** The health machine with inert implementations, for walking its graph. */
export const walkableHealthMachine = healthMachine.provide({
  actors: {
    probeBackend: fromPromise<ProbeOutput, ProbeInput>(() => new Promise<ProbeOutput>(noop)),
    inferencePing: fromCallback<BackendReply, PingInput>(noop),
  },
  actions: { reportUp: noop, reportDown: noop },
});

/**
 * The backend machine with inert implementations, for walking its graph: nothing runs, nothing is sent
 * anywhere. The real behaviour is what the tests then drive along the walked paths.
 */
export const walkableBackendMachine = backendMachine.provide({
  actors: {
    callBackend: fromCallback<CallCommand, CallBackendInput>(noop),
    requesterWatcher: fromCallback<WatcherCommand>(noop),
    health: walkableHealthMachine,
  },
});

/** A started actor that ignores everything: a reply address for walked requests. */
export const inertRequester = createActor(fromCallback(noop)).start();
