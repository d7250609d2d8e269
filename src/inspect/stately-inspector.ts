import type { InspectionEvent } from 'xstate';
import { startInspectorRelay, STATELY_INSPECTOR_PAGE } from './inspector-relay.js';

/** The port `--inspect` uses without `=PORT` (`@statelyai/inspect`'s own default). */
export const DEFAULT_INSPECT_PORT = 8080;

/** A running inspector: hand `inspect` to every actor, open `pageUrl` to watch. */
export interface StatelyInspector {
  /** The page to open in a browser: the Stately inspector, fed from the local relay. */
  pageUrl: string;
  /** The relay's WebSocket (where the events go; a test or another tool may listen there too). */
  wsUrl: string;
  /** The actors' inspection callback (`createActor(logic, { inspect })`). */
  inspect: (event: InspectionEvent) => void;
  stop(): Promise<void>;
}

/**
 * `--inspect[=PORT]`: starts the local relay on 127.0.0.1:PORT (see inspector-relay.ts) and
 * `@statelyai/inspect`'s WebSocket inspector, connected to it, without opening a browser. Nothing leaves
 * this machine unless someone opens `pageUrl` (which loads the Stately inspector page and hands it the
 * events in the browser). The package is loaded only here, so without `--inspect` it costs nothing.
 */
export async function startStatelyInspector(options: { port: number }): Promise<StatelyInspector> {
  const relay = await startInspectorRelay({ port: options.port });
  try {
    const { createWebSocketInspector } = await import('@statelyai/inspect');
    // autoStart off: connect once the relay listens (it does now), and only to it.
    const inspector = createWebSocketInspector({ url: relay.wsUrl, autoStart: false });
    inspector.start();
    const { inspect } = inspector;
    return {
      pageUrl: relay.pageUrl,
      wsUrl: relay.wsUrl,
      inspect: (event) => inspect.next?.(event),
      stop: async () => {
        inspector.stop();
        await relay.close();
      },
    };
  } catch (error) {
    await relay.close();
    throw error;
  }
}

/** The line `npm start -- --inspect` prints. */
export function inspectorNotice(inspector: Pick<StatelyInspector, 'pageUrl'>): string {
  return `Stately inspector: open ${inspector.pageUrl} in a browser to watch every actor live (it embeds ${STATELY_INSPECTOR_PAGE}; the events stay on this machine until you open it)`;
}
