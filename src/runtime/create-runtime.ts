import type { Logger } from 'pino';
import type { Config } from '../config/config-schema.js';
import { BackendRegistry, type BackendRegistryDeps, type BackendStatus } from './backend-registry.js';

/** The body of `GET /status` and of the WebSocket `status` reply (DESIGN §5). */
export interface StatusBody {
  backends: Record<string, BackendStatus>;
  jobs: { active: number; pending: number };
}

/** The small interface transports use; they never reach past it. */
export interface Runtime {
  readonly config: Config;
  readonly backends: BackendRegistry;
  status(): StatusBody;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface RuntimeDeps {
  log: Logger;
  createClient?: BackendRegistryDeps['createClient'];
}

/** The composition root: builds the backend actors (and, as they arrive, the store, tools and supervisor). */
export function createRuntime(config: Config, deps: RuntimeDeps): Runtime {
  const backends = new BackendRegistry(config.backends, deps);
  return {
    config,
    backends,
    status: () => ({ backends: backends.status(), jobs: { active: 0, pending: 0 } }),
    start: async () => backends.start(),
    stop: async () => backends.stop(),
  };
}
