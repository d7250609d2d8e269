import { createMachine, fromPromise } from 'xstate';

/**
 * A small machine with what the project's machines do not all have — parallel regions, exit actions,
 * a history-free nested region, `after` by milliseconds — for the diagram tests.
 */
export const sampleMachine = createMachine(
  {
    id: 'player',
    initial: 'stopped',
    states: {
      stopped: { on: { play: 'playing' } },
      playing: {
        type: 'parallel',
        entry: 'startClock',
        exit: 'stopClock',
        on: { stop: 'stopped' },
        states: {
          audio: {
            initial: 'loading',
            states: {
              loading: { invoke: { id: 'load', src: 'loadTrack', onDone: 'sounding', onError: '#player.stopped' } },
              sounding: { after: { 1500: { target: 'loading', reenter: true } } },
            },
          },
          lyrics: {
            initial: 'hidden',
            states: {
              hidden: { on: { toggle: { guard: 'hasLyrics', target: 'shown' } } },
              shown: { always: { guard: 'ended', target: 'hidden' } },
            },
          },
        },
      },
    },
  },
  {
    actors: { loadTrack: fromPromise(async () => 'track') },
    actions: { startClock: () => {}, stopClock: () => {} },
    guards: { hasLyrics: () => true, ended: () => false },
  },
);
