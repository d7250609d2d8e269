import { createInferenceActors, type InferenceActorsDeps } from '../actors/inference/create-inference-actors.js';
import { backendMachine } from '../machines/backend-machine.js';
import { healthMachine } from '../machines/health-machine.js';

/**
 * The backend machine with every implementation it names, for one backend's client: its own actors and
 * those of its health sub-machine.
 */
export function provideBackendMachine(deps: InferenceActorsDeps) {
  const { callBackend, probeBackend, inferencePing, requesterWatcher } = createInferenceActors(deps);
  return backendMachine.provide({
    actors: {
      callBackend,
      requesterWatcher,
      health: healthMachine.provide({ actors: { probeBackend, inferencePing } }),
    },
  });
}
