/**
 * The tool registry over a real store (PGlite always, PostgreSQL when TEST_DATABASE_URL is set):
 * document search and read, and every way a call can fail. Slow and failing tools are injected
 * through `extraTools` or a store wrapper, not by mocking our modules.
 */
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createToolRegistry, TOOL_TIMEOUT_MS, type ToolRegistryOptions } from '../src/actors/tools/create-tool-registry.js';
import { DOCUMENT_BODY_MAX_CHARS, type DocumentReader } from '../src/actors/tools/document-tools.js';
import { defineOperation, type ToolDefinition } from '../src/actors/tools/tool-operation.js';
import {
  sourcesOf,
  toolPayload,
  TRUNCATED_MARKER,
  type ToolResult,
  type ToolSuccess,
} from '../src/actors/tools/tool-result.js';
import { createStore, type Store } from '../src/actors/store/store.js';
import { configSchema, type Config } from '../src/config/config-schema.js';
import { loadPrompts } from '../src/prompts/load-prompts.js';
import type { Messages } from '../src/prompts/messages.js';
import { forEachDatabase } from './helpers/databases.js';

const REASON = /^[a-z0-9_]{1,64}$/;

let ko: Messages;
let en: Messages;
beforeAll(async () => {
  const prompts = await loadPrompts();
  ko = prompts.messages('ko');
  en = prompts.messages('en');
});

function config(tools: Partial<Config['tools']> = {}): Config {
  const base = configSchema.parse({});
  return { ...base, tools: { ...base.tools, ...tools } };
}

const calendarOn = { url: 'http://127.0.0.1:5232/dav/', user: 'alice', password: 'unused-here', draftTtlMs: 600_000 };
const emailOn = { url: 'imap://127.0.0.1:1143', user: 'alice', password: 'unused-here', folder: 'INBOX', rejectUnauthorized: true };

/** A store that answers document calls only after `delayMs`. */
function slowStore(store: DocumentReader, delayMs: number): DocumentReader {
  const later = <T>(value: Promise<T>): Promise<T> =>
    new Promise((resolve, reject) => setTimeout(() => value.then(resolve, reject), delayMs));
  return {
    searchDocuments: (query, limit) => later(store.searchDocuments(query, limit)),
    readDocument: (id) => later(store.readDocument(id)),
  };
}

function expectSuccess(result: ToolResult): ToolSuccess {
  if (!result.ok) throw new Error(`expected success, got ${result.reason}: ${result.message}`);
  return result;
}

function expectFailure(result: ToolResult, reason: string): string {
  expect(result).toMatchObject({ ok: false, reason });
  if (result.ok) throw new Error('unreachable');
  expect(result.reason).toMatch(REASON);
  return result.message;
}

forEachDatabase((getDatabase) => {
  let store: Store;
  /** A prefix unique to this run, so the shared database may hold earlier rows. */
  const tag = `t${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    store = createStore(getDatabase().db);
    await store.upsertDocument({
      id: `${tag}/budget.md`,
      title: '2025년 예산 계획',
      body: '올해 예산은 장비 구입과 교육비를 중심으로 편성했습니다. 분기마다 집행률을 점검합니다.',
    });
    await store.upsertDocument({
      id: `${tag}/meeting.md`,
      title: '주간 회의록',
      body: '예산 집행 현황을 공유했고, 다음 회의는 금요일입니다.',
    });
    await store.upsertDocument({
      id: `${tag}/deploy.md`,
      title: 'Deployment checklist',
      body: 'Run the migrations, then restart the gateway and watch the status page.',
    });
    await store.upsertDocument({
      id: `${tag}/long.md`,
      title: '긴 문서',
      body: `${'가나다라마바사 '.repeat(400)}끝`,
    });
  });

  const registry = (options: Partial<ToolRegistryOptions> = {}) =>
    createToolRegistry({ store, config: config(), messages: ko, ...options });

  describe('document.search', () => {
    it('finds Korean documents, with a readable summary and sources', async () => {
      const result = expectSuccess(await registry().run('document', 'search', { query: '예산' }));
      // Korean words with particles ("예산은") are found by the store's substring pass.
      const ids = (result.data as Array<{ id: string }>).map((item) => item.id);
      expect(ids).toEqual(expect.arrayContaining([`${tag}/budget.md`]));
      expect(result.data).toEqual(
        expect.arrayContaining([
          { id: `${tag}/budget.md`, title: '2025년 예산 계획', snippet: expect.stringContaining('예산') },
        ]),
      );
      expect(result.summary).toMatch(/^찾은 문서 \d+개:\n1\. /);
      expect(result.summary).toContain('2025년 예산 계획');
      expect(sourcesOf(result)).toEqual(
        (result.data as Array<{ id: string; title: string }>).map(({ id, title }) => ({ id, title })),
      );
    });

    it('finds English documents', async () => {
      const result = expectSuccess(
        await registry({ messages: en }).run('document', 'search', { query: 'deployment checklist' }),
      );
      expect(result.data).toEqual(
        expect.arrayContaining([expect.objectContaining({ id: `${tag}/deploy.md`, title: 'Deployment checklist' })]),
      );
      expect(result.summary).toMatch(/^Found \d+ documents:/);
    });

    it('returns at most five results', async () => {
      for (let index = 0; index < 7; index += 1) {
        await store.upsertDocument({ id: `${tag}/many-${index}.md`, title: `zebracrossing ${index}`, body: 'zebracrossing' });
      }
      const result = expectSuccess(await registry().run('document', 'search', { query: 'zebracrossing' }));
      expect(result.data).toHaveLength(5);
      expect(sourcesOf(result)).toHaveLength(5);
    });

    it('says clearly when nothing was found', async () => {
      const result = expectSuccess(await registry().run('document', 'search', { query: 'qwxzvkjh' }));
      expect(result.data).toEqual([]);
      expect(result.summary).toBe("'qwxzvkjh'에 맞는 문서를 찾지 못했어요.");
      expect(sourcesOf(result)).toEqual([]);
    });
  });

  describe('document.read', () => {
    it('reads a document', async () => {
      const result = expectSuccess(await registry().run('document', 'read', { id: `${tag}/deploy.md` }));
      expect(result.data).toEqual({
        id: `${tag}/deploy.md`,
        title: 'Deployment checklist',
        path: null,
        body: 'Run the migrations, then restart the gateway and watch the status page.',
        truncated: false,
      });
      expect(result.summary).toContain('Deployment checklist');
      expect(sourcesOf(result)).toEqual([{ id: `${tag}/deploy.md`, title: 'Deployment checklist' }]);
    });

    it(`cuts the body to ${DOCUMENT_BODY_MAX_CHARS} characters`, async () => {
      const result = expectSuccess(await registry().run('document', 'read', { id: `${tag}/long.md` }));
      const data = result.data as { body: string; truncated: boolean };
      expect(data.truncated).toBe(true);
      expect(data.body).toHaveLength(DOCUMENT_BODY_MAX_CHARS + TRUNCATED_MARKER.length);
      expect(data.body.endsWith(TRUNCATED_MARKER)).toBe(true);
      expect(result.summary).toContain(ko.tools.documentTruncated);
    });

    it('answers not_found for an unknown id', async () => {
      const message = expectFailure(await registry().run('document', 'read', { id: `${tag}/nope.md` }), 'not_found');
      expect(message).toBe(ko.tools.documentNotFound);
    });
  });

  describe('refusals', () => {
    it('refuses bad params with a readable message', async () => {
      const tools = registry({ config: config({ calendar: calendarOn, email: emailOn }) });
      expect(expectFailure(await tools.run('document', 'search', {}), 'bad_tool_params')).toContain(
        'document.search: query: missing',
      );
      expect(expectFailure(await tools.run('document', 'search', { query: '   ' }), 'bad_tool_params')).toContain(
        'query: missing',
      );
      expect(expectFailure(await tools.run('document', 'read', { id: ['x'] }), 'bad_tool_params')).toContain(
        'id: expected a document id as text',
      );
      const dates = expectFailure(
        await tools.run('calendar', 'search', { date_from: '2025-02-30', date_to: 'tomorrow' }),
        'bad_tool_params',
      );
      expect(dates).toContain('date_from: not a date in the calendar');
      expect(dates).toContain('date_to: expected a date YYYY-MM-DD');
      expect(
        expectFailure(
          await tools.run('calendar', 'create_draft', { title: '치과', date: '2025-03-18', time: '25:00' }),
          'bad_tool_params',
        ),
      ).toContain('time: expected a time HH:MM');
      expect(expectFailure(await tools.run('email', 'search', { days: 0 }), 'bad_tool_params')).toContain(
        'days: at least 1 day',
      );
    });

    it('accepts the harmless variants models write, and hands the operation the normalised params', async () => {
      const tools = registry({ config: config({ calendar: calendarOn, email: emailOn }) });
      // A draft is the params as normalised (nothing is written: test/calendar-tool.test.ts runs the rest on Radicale).
      const draft = await tools.run('calendar', 'create_draft', { title: '치과', date: '2025-03-18', time: '9:30', end_time: null });
      expect(draft).toMatchObject({ ok: true, data: { title: '치과', date: '2025-03-18', time: '09:30' } });
      // Valid params reach the operation, which contacts no host outside egress.allowHosts (none here).
      const search = await tools.run('calendar', 'search', { date_from: '2025-03-18' });
      expect(search).toMatchObject({ ok: false, reason: 'tool_failed' });
      expect(!search.ok && search.message).toContain('is not in egress.allowHosts');
      await tools.close();
    });

    it('answers unknown_tool for unknown tools and operations', async () => {
      const tools = registry();
      for (const [tool, operation] of [
        ['weather', 'today'],
        ['document', 'delete'],
        ['__proto__', 'search'],
        ['document', 'toString'],
        ['constructor', 'name'],
      ] as const) {
        expect(expectFailure(await tools.run(tool, operation, {}), 'unknown_tool')).toBe(ko.tools.unknownTool);
      }
    });

    it('answers tool_not_configured for calendar and email without configuration', async () => {
      const tools = registry();
      expect(expectFailure(await tools.run('calendar', 'today', {}), 'tool_not_configured')).toBe(
        ko.tools.calendarNotConfigured,
      );
      // Before its params are even looked at.
      expect(expectFailure(await tools.run('calendar', 'search', { date_from: 'soon' }), 'tool_not_configured')).toBe(
        ko.tools.calendarNotConfigured,
      );
      expect(expectFailure(await tools.run('email', 'search', {}), 'tool_not_configured')).toBe(
        ko.tools.emailNotConfigured,
      );
      const disabled = registry({ config: config({ documents: { enabled: false } }) });
      expect(expectFailure(await disabled.run('document', 'search', { query: '예산' }), 'tool_not_configured')).toBe(
        ko.tools.documentsNotConfigured,
      );
    });

    it('refuses to send email, configured or not', async () => {
      for (const tools of [registry(), registry({ config: config({ email: emailOn }) })]) {
        for (const operation of ['send', 'send_draft', 'reply', 'forward']) {
          expect(expectFailure(await tools.run('email', operation, { to: 'a@example.com' }), 'email_send_refused')).toBe(
            ko.tools.emailSendRefused,
          );
        }
      }
    });
  });

  describe('time limits and failures', () => {
    it(`times out after ${TOOL_TIMEOUT_MS} ms by default, here shortened`, async () => {
      const tools = registry({ store: slowStore(store, 300), timeoutMs: 50 });
      const started = Date.now();
      expect(expectFailure(await tools.run('document', 'search', { query: '예산' }), 'tool_timeout')).toBe(
        ko.tools.timeout,
      );
      expect(Date.now() - started).toBeLessThan(250);
      // The same slow store within the limit works.
      const patient = registry({ store: slowStore(store, 20), timeoutMs: 1_000 });
      expectSuccess(await patient.run('document', 'search', { query: '예산' }));
    });
  });
});

describe('injected tools', () => {
  const emptyStore: DocumentReader = {
    searchDocuments: async () => [],
    readDocument: async () => null,
  };

  function withTools(extraTools: Record<string, ToolDefinition>, options: Partial<ToolRegistryOptions> = {}) {
    return createToolRegistry({ store: emptyStore, config: config(), messages: ko, extraTools, timeoutMs: 50, ...options });
  }

  it('aborts the signal of an operation that timed out', async () => {
    let seen: AbortSignal | undefined;
    const tools = withTools({
      slow: {
        operations: {
          wait: defineOperation(z.object({}), (_params, { signal }) => {
            seen = signal;
            return new Promise<ToolResult>(() => undefined);
          }),
        },
      },
    });
    expectFailure(await tools.run('slow', 'wait', {}), 'tool_timeout');
    expect(seen?.aborted).toBe(true);
  });

  it('turns exceptions into tool_failed without their text, and reports them to onError', async () => {
    const errors: unknown[] = [];
    const tools = withTools(
      {
        broken: {
          operations: {
            async: defineOperation(z.object({}), async () => {
              throw new Error('secret body of a mail');
            }),
            sync: defineOperation(z.object({}), () => {
              throw new Error('secret too');
            }),
          },
        },
      },
      { onError: (error) => errors.push(error) },
    );
    for (const operation of ['async', 'sync']) {
      const result = await tools.run('broken', operation, {});
      expect(expectFailure(result, 'tool_failed')).toBe(ko.tools.failed);
      expect(JSON.stringify(result)).not.toContain('secret');
    }
    expect(errors).toHaveLength(2);
  });

  it('answers cancelled when the caller aborts, and aborts the operation', async () => {
    let seen: AbortSignal | undefined;
    const tools = withTools(
      {
        slow: {
          operations: {
            wait: defineOperation(z.object({}), (_params, { signal }) => {
              seen = signal;
              return new Promise<ToolResult>(() => undefined);
            }),
          },
        },
      },
      { timeoutMs: 5_000 },
    );
    const controller = new AbortController();
    const pending = tools.run('slow', 'wait', {}, controller.signal);
    setTimeout(() => controller.abort(), 10);
    expectFailure(await pending, 'cancelled');
    expect(seen?.aborted).toBe(true);
    // Already aborted: nothing runs.
    seen = undefined;
    expectFailure(await tools.run('slow', 'wait', {}, controller.signal), 'cancelled');
    expect(seen).toBeUndefined();
  });

  it('sanitizes reasons of hand-made failures and hands the clock to operations', async () => {
    const now = new Date('2025-03-14T01:00:00Z');
    const tools = withTools(
      {
        odd: {
          operations: {
            fail: defineOperation(z.object({}), async () => ({ ok: false, reason: 'Calendar Down!', message: 'down' })),
            clock: defineOperation(z.object({}), async (_params, context) => ({
              ok: true,
              data: context.now.toISOString(),
              summary: '',
            })),
          },
        },
      },
      { now: () => now },
    );
    expect(await tools.run('odd', 'fail', {})).toEqual({ ok: false, reason: 'calendar_down', message: 'down' });
    expect(expectSuccess(await tools.run('odd', 'clock', {})).data).toBe('2025-03-14T01:00:00.000Z');
  });

  it('lists its operations', () => {
    expect(withTools({}).operations()).toEqual([
      'calendar.today',
      'calendar.search',
      'calendar.create_draft',
      'calendar.create_confirmed',
      'email.search',
      'email.read',
      'document.search',
      'document.read',
    ]);
  });
});

describe('toolPayload', () => {
  it('serializes data as readable JSON', () => {
    expect(toolPayload([{ title: '예산', n: 1 }])).toBe('[{"title":"예산","n":1}]');
    expect(toolPayload(undefined)).toBe('null');
  });

  it('cuts long payloads to the limit and marks the cut', () => {
    const long = toolPayload({ body: '가'.repeat(3_000) });
    expect(long).toHaveLength(2_000 + TRUNCATED_MARKER.length);
    expect(long.endsWith(TRUNCATED_MARKER)).toBe(true);
    expect(toolPayload('abcdef', 4)).toBe(`"abc${TRUNCATED_MARKER}`);
    // Exactly at the limit: untouched.
    expect(toolPayload('ab', 4)).toBe('"ab"');
  });

  it('does not split a surrogate pair', () => {
    // '"' then an emoji (two UTF-16 units): a cut after 2 units would leave half of it.
    expect(toolPayload('😀😀', 2)).toBe(`"${TRUNCATED_MARKER}`);
  });
});
