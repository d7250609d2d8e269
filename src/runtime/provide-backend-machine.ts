import { createInferenceActors, type InferenceActorsDeps } from '../actors/inference/create-inference-actors.js';
import { backendMachine } from '../machines/backend-machine.js';
import { inferenceSlotMachine } from '../machines/inference-slot-machine.js';

/**
 * The backend machine with every implementation it names, for one backend's client: its own actors and
 * those of the `inferenceSlot` children it spawns.
 */
export function provideBackendMachine(deps: InferenceActorsDeps) {
  const { callBackend, probeBackend, inferencePing, requesterWatcher } = createInferenceActors(deps);
  return backendMachine.provide({
    actors: {
      inferenceSlot: inferenceSlotMachine.provide({ actors: { callBackend } }),
      probeBackend,
      inferencePing,
      requesterWatcher,
    },
  });
}
