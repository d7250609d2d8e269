import type { AnyStateMachine } from 'xstate';
import { backendMachine } from '../../src/machines/backend-machine.js';
import { conversationMachine } from '../../src/machines/conversation-machine.js';
import { healthMachine } from '../../src/machines/health-machine.js';
import { jobMachine } from '../../src/machines/job-machine.js';
import { reactMachine } from '../../src/machines/react-machine.js';
import { supervisorMachine } from '../../src/machines/supervisor-machine.js';
import { backendInput, healthCoverWalks, healthInput, healthPaths, idleView, mailboxCoverWalks, mailboxPaths } from './backend-paths.js';
import { conversationCoverWalks } from './conversation-paths.js';
import { gatewayJobWalks, jobCoverWalks, walkableJobMachine } from './job-paths.js';
import type { Walk } from './machine-transitions.js';
import { gatewayReactWalks, reactCoverWalks, reactInput, walkableReactMachine } from './react-paths.js';
import { supervisorCoverWalks, walkableSupervisorMachine } from './supervisor-paths.js';
import type { CoverWalk } from './transition-cover.js';
import { walkableBackendMachine, walkableHealthMachine } from './walkable-backend.js';

/** One machine's generated paths, as the model-based tests drive them. */
export interface MachineWalks {
  name: string;
  /** The machine as `src/machines/` defines it (what coverage is measured against). */
  definition: AnyStateMachine;
  /** The variant with inert actors the paths were generated from and are replayed on. */
  walkable: AnyStateMachine;
  /** Paths driven through the running gateway or against a real actor and the fake server. */
  system: Walk[];
  /** Paths driven against the actor with scripted actors (`test/model-machines.test.ts`). */
  cover: CoverWalk[];
}

const stepsOf = (path: { steps: Array<{ event: { type: string } }> }) => path.steps.slice(1).map((step) => step.event);

/**
 * Every machine's generated paths, from the same generators the model-based tests call:
 * `test/model-job.test.ts`, `model-react.test.ts`, `model-backend.test.ts` (system paths) and
 * `test/model-machines.test.ts` (transition covers). `test/graph-coverage.test.ts` replays them all.
 */
export function modelWalks(): MachineWalks[] {
  return [
    {
      name: 'job',
      definition: jobMachine,
      walkable: walkableJobMachine,
      system: gatewayJobWalks().map(({ input, path }) => ({ input, events: stepsOf(path) })),
      cover: jobCoverWalks(),
    },
    {
      name: 'react',
      definition: reactMachine,
      walkable: walkableReactMachine,
      system: gatewayReactWalks().map((path) => ({ input: reactInput, events: stepsOf(path) })),
      cover: reactCoverWalks(),
    },
    { name: 'supervisor', definition: supervisorMachine, walkable: walkableSupervisorMachine, system: [], cover: supervisorCoverWalks() },
    { name: 'conversation', definition: conversationMachine, walkable: conversationMachine, system: [], cover: conversationCoverWalks() },
    {
      name: 'backend mailbox',
      definition: backendMachine,
      walkable: walkableBackendMachine,
      system: [1, 2].flatMap((concurrency) => mailboxPaths(concurrency).map((path) => ({ input: backendInput(concurrency), events: stepsOf(path) }))),
      cover: mailboxCoverWalks(),
    },
    {
      name: 'health',
      definition: healthMachine,
      walkable: walkableHealthMachine,
      system: healthPaths().map((path) => ({ input: healthInput(idleView, Date.now), events: stepsOf(path) })),
      cover: healthCoverWalks(),
    },
  ];
}
