import { createInferenceActors, type InferenceActorsDeps } from '../actors/inference/create-inference-actors.js';
import { backendMachine } from '../machines/backend-machine.js';
import { inferenceRunMachine } from '../machines/inference-run-machine.js';

/**
 * The backend machine with every implementation it names, for one backend's client: its own actors and
 * those of the `inferenceRun` children it spawns.
 */
export function provideBackendMachine(deps: InferenceActorsDeps) {
  const { callBackend, probeBackend, inferencePing, requesterWatcher } = createInferenceActors(deps);
  return backendMachine.provide({
    actors: {
      inferenceRun: inferenceRunMachine.provide({ actors: { callBackend } }),
      probeBackend,
      inferencePing,
      requesterWatcher,
    },
  });
}
