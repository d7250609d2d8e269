/** The system status as text, in Korean and English. */
import { beforeAll, expect, it } from 'vitest';
import { formatSystemStatus, type SystemStatusView } from '../src/jobs/system-status-text.js';
import { loadPrompts, type Prompts } from '../src/prompts/load-prompts.js';
import type { StatusBody } from '../src/runtime/runtime.js';

let prompts: Prompts;
beforeAll(async () => {
  prompts = await loadPrompts();
});

const status: StatusBody = {
  backends: {
    exaone: { state: 'up', load: 'very_busy', source: 'status_api', queue: { waiting: 3, running: 1 }, healthMs: 12.6 },
    gemma: { state: 'down', load: 'idle', source: 'hybrid', queue: { waiting: 0, running: 0 }, healthMs: 480 },
    qwen: { state: 'up', load: 'idle', source: 'hybrid', queue: { waiting: 0, running: 0 }, healthMs: 0 },
  },
  jobs: { active: 2, pending: 1_250 },
};

it('lists each backend and the job counts in Korean', () => {
  expect(formatSystemStatus(status, prompts.messages('ko'), 'ko')).toBe(
    [
      '시스템 상태',
      'exaone: 정상 · 매우 바쁨 (상태 API)',
      '  대기 3 · 처리 중 1 · 응답 13ms',
      'gemma: 연결 안 됨',
      '  대기 0 · 처리 중 0',
      'qwen: 정상 · 한가함 (응답 시간 추정)',
      '  대기 0 · 처리 중 0',
      '작업: 처리 중 2 · 대기 1,250',
    ].join('\n'),
  );
});

it('uses the English labels and number format for en', () => {
  const text = formatSystemStatus(status, prompts.messages('en'), 'en');
  expect(text.split('\n')).toEqual([
    'System status',
    'exaone: up · very busy (status API)',
    '  waiting 3 · running 1 · health 13 ms',
    'gemma: down',
    '  waiting 0 · running 0',
    'qwen: up · idle (estimated from latency)',
    '  waiting 0 · running 0',
    'Jobs: 2 active · 1,250 waiting',
  ]);
});

it('says when no backend is configured, and survives a malformed locale', () => {
  const empty: SystemStatusView = { backends: {}, jobs: { active: 0, pending: 0 } };
  expect(formatSystemStatus(empty, prompts.messages('en'), 'not a locale!')).toBe(
    ['System status', 'No model servers are configured.', 'Jobs: 0 active · 0 waiting'].join('\n'),
  );
  const unknown: SystemStatusView = {
    backends: { local: { state: 'unknown', load: 'idle', source: 'hybrid', queue: { waiting: 1, running: 0 }, healthMs: 0 } },
    jobs: { active: 1, pending: 0 },
  };
  expect(formatSystemStatus(unknown, prompts.messages('ko'), 'ko')).toContain('local: 확인 중\n  대기 1 · 처리 중 0');
});
