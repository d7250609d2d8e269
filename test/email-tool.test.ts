/**
 * The email tool against a real Dovecot (2.3, `test/helpers/start-dovecot.ts`): messages seeded with
 * IMAP APPEND at fixed internal dates, searched against a fixed clock; MIME decoding (a Korean
 * encoded-word subject, quoted-printable, base64 HTML); one connection reused and opened again after it
 * drops; a server that is stopped, one that never greets, a refused login; a password from the
 * environment; and log lines that hold neither the password nor a message's text. One test drives the
 * whole gateway (a scripted classifier asking for `email.search`) through a Dovecot stop and restart.
 */
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToolRegistry, type ToolRegistryOptions } from '../src/actors/tools/create-tool-registry.js';
import { EMAIL_BODY_MAX_CHARS, EMAIL_SEARCH_LIMIT, type EmailHit } from '../src/actors/tools/email-tools.js';
import { TOOL_PAYLOAD_MAX_CHARS, TRUNCATED_MARKER, type ToolResult, type ToolSuccess } from '../src/actors/tools/tool-result.js';
import { configSchema, type Config } from '../src/config/config-schema.js';
import { parseConfig } from '../src/config/load-config.js';
import { maskSecrets } from '../src/config/mask-secrets.js';
import { loadPrompts } from '../src/prompts/load-prompts.js';
import type { Messages } from '../src/prompts/messages.js';
import { createToolRunner } from '../src/runtime/create-tool-runner.js';
import type { Store } from '../src/actors/store/store.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { closedPort } from './helpers/closed-port.js';
import { dovecotAvailability, startDovecot, type Dovecot, type SeedMessage } from './helpers/start-dovecot.js';
import { startTestGateway, TestClient, type TestGateway } from './helpers/gateway.js';
import { scriptModels } from './helpers/scripted-models.js';
import { capturingLog } from './helpers/ws-harness.js';

const availability = dovecotAvailability();
if (availability === 'fail') throw new Error('CI=true but /usr/sbin/dovecot is missing (.ci/run installs dovecot-imapd)');

/** The tool's clock: every internal date below is relative to it. */
const NOW = new Date('2026-03-10T12:00:00Z');
const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;
const at = (msBefore: number): Date => new Date(NOW.getTime() - msBefore);

const KOREAN_SUBJECT = '3월 예산 회의록';
const KOREAN_BODY = '회의록: 3월 예산은 1,200만 원으로 확정했습니다.\n다음 회의는 금요일 오후 두 시입니다. 참석 부탁드립니다 = 감사합니다.';
/** Words of bodies that must never reach a log line. */
const BODY_MARKERS = ['quarterly-budget-Kx7', '1,200만', 'green-tonight-Qz', 'invoice-body-Pw3'];

function encodedWord(text: string): string {
  return `=?UTF-8?B?${Buffer.from(text).toString('base64')}?=`;
}

/** Quoted-printable (RFC 2045): bytes outside printable ASCII, and `=`, as `=XX`; soft breaks under 76. */
function quotedPrintable(text: string): string {
  const lines = text.split('\n').map((line) => {
    let out = '';
    let width = 0;
    for (const byte of Buffer.from(line)) {
      const piece = byte === 0x3d || byte < 0x20 || byte > 0x7e ? `=${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
      if (width + piece.length > 75) {
        out += '=\n';
        width = 0;
      }
      out += piece;
      width += piece.length;
    }
    return out;
  });
  return lines.join('\n');
}

function message(headers: Record<string, string>, body: string): string {
  const head = Object.entries({ To: 'alice@example.org', 'MIME-Version': '1.0', ...headers })
    .map(([name, value]) => `${name}: ${value}`)
    .join('\n');
  return `${head}\n\n${body}\n`;
}

const plain = (from: string, subject: string, body: string) =>
  message({ From: from, Subject: subject, 'Content-Type': 'text/plain; charset=UTF-8' }, body);

const LONG_BODY = Array.from({ length: 120 }, (_, i) => `Line ${i + 1} of a long letter about the harbour.`).join('\n');

/** The seeded mailbox, by name; `date` is the internal date. */
const SEEDS: Record<string, SeedMessage> = {
  html: {
    raw: message(
      { From: 'Monitor <monitor@example.org>', Subject: 'Server report', 'Content-Type': 'text/html; charset=UTF-8', 'Content-Transfer-Encoding': 'base64' },
      Buffer.from('<html><body><h1>Server report</h1><p>All systems <b>green-tonight-Qz</b>.</p></body></html>')
        .toString('base64')
        .replace(/(.{76})/g, '$1\n'),
    ),
    date: at(3 * HOUR),
  },
  budget: { raw: plain('Bob <bob@example.org>', 'Quarterly budget', 'The quarterly-budget-Kx7 draft is attached.\nRegards, Bob'), date: at(1 * DAY) },
  korean: {
    raw: message(
      {
        From: `${encodedWord('김철수')} <chulsoo@example.org>`,
        Subject: encodedWord(KOREAN_SUBJECT),
        'Content-Type': 'text/plain; charset=UTF-8',
        'Content-Transfer-Encoding': 'quoted-printable',
      },
      quotedPrintable(KOREAN_BODY),
    ),
    date: at(2 * DAY),
  },
  long: { raw: plain('Carol <carol@example.org>', 'A long letter', LONG_BODY), date: at(5 * DAY) },
  edgeIn: { raw: plain('Dan <dan@example.org>', 'Just inside the week', 'inside'), date: at(7 * DAY - HOUR) },
  edgeOut: { raw: plain('Dan <dan@example.org>', 'Just outside the week', 'outside'), date: at(7 * DAY + HOUR) },
  oldBudget: { raw: plain('Bob <bob@example.org>', 'Old budget', 'Last month the budget was smaller.'), date: at(20 * DAY) },
  invoice: { raw: plain('Shop <shop@example.org>', 'Invoice 42', 'invoice-body-Pw3: 42 EUR'), date: at(1 * DAY), folder: 'Work' },
};

let ko: Messages;
let en: Messages;
let dovecot: Dovecot;
const uids: Record<string, number> = {};

/** No store: the email tool never touches it. */
const noStore = {} as Store;

function emailConfig(overrides: Record<string, unknown> = {}): Config {
  const base = configSchema.parse({});
  const email = configSchema.parse({ tools: { email: { url: dovecot.url, user: dovecot.user, password: dovecot.password, ...overrides } } }).tools.email;
  return { ...base, tools: { ...base.tools, email } };
}

function registry(options: Partial<ToolRegistryOptions> = {}) {
  return createToolRegistry({ store: noStore, config: emailConfig(), messages: en, now: () => NOW, ...options });
}

function expectSuccess(result: ToolResult): ToolSuccess {
  if (!result.ok) throw new Error(`expected success, got ${result.reason}: ${result.message}`);
  return result;
}

function expectFailure(result: ToolResult, reason: string): string {
  expect(result).toMatchObject({ ok: false, reason });
  if (result.ok) throw new Error('unreachable');
  return result.message;
}

const subjects = (result: ToolResult): string[] => (expectSuccess(result).data as EmailHit[]).map((hit) => hit.subject);

/** A TCP relay in front of Dovecot that counts the connections it carries and can cut them. */
async function startRelay(targetPort: number): Promise<{
  port: number;
  connections: () => number;
  /** Resolves when no connection through the relay is open (the client hung up). */
  idle: () => Promise<void>;
  cutAll: () => Promise<void>;
  close: () => Promise<void>;
}> {
  const open = new Set<Socket>();
  let count = 0;
  const server: Server = createServer((client) => {
    count += 1;
    const upstream = connect(targetPort, '127.0.0.1');
    open.add(client);
    client.pipe(upstream).pipe(client);
    const end = () => {
      open.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const cutAll = async () => {
    const closing = [...open].map((socket) => once(socket, 'close'));
    for (const socket of open) socket.destroy();
    await Promise.all(closing);
  };
  return {
    port: (server.address() as { port: number }).port,
    connections: () => count,
    idle: async () => {
      await Promise.all([...open].map((socket) => (socket.destroyed ? undefined : once(socket, 'close'))));
    },
    cutAll,
    close: async () => {
      await cutAll();
      server.close();
      await once(server, 'close');
    },
  };
}

describe.skipIf(availability === 'skip')('the email tool on Dovecot', () => {
  beforeAll(async () => {
    const prompts = await loadPrompts();
    ko = prompts.messages('ko');
    en = prompts.messages('en');
    dovecot = await startDovecot();
    const names = Object.keys(SEEDS);
    const seeded = await dovecot.seed(names.map((name) => SEEDS[name]!));
    names.forEach((name, index) => (uids[name] = seeded[index]!));
  }, 30_000);

  afterAll(async () => {
    await dovecot?.destroy();
  });

  describe('search', () => {
    it('finds what arrived in the last `days` × 24 hours before the clock, newest first, with uid, from, subject and date', async () => {
      const tools = registry();
      try {
        const result = expectSuccess(await tools.run('email', 'search', {}));
        const hits = result.data as EmailHit[];
        expect(hits.map((hit) => hit.subject)).toEqual(['Server report', 'Quarterly budget', KOREAN_SUBJECT, 'A long letter', 'Just inside the week']);
        expect(hits[0]).toEqual({ uid: uids['html'], folder: 'INBOX', from: 'Monitor <monitor@example.org>', subject: 'Server report', date: at(3 * HOUR).toISOString() });
        expect(hits[2]?.from).toBe('김철수 <chulsoo@example.org>');
        expect(result.summary.split('\n')[0]).toBe(en.tools.emailFound.replace('{{count}}', '5'));
        // The window includes its start: a message that arrived exactly 24 hours before is in `days: 1`.
        expect(subjects(await tools.run('email', 'search', { days: 1 }))).toEqual(['Server report', 'Quarterly budget']);
        expect(subjects(await tools.run('email', 'search', { days: '30' }))).toEqual([
          'Server report', 'Quarterly budget', KOREAN_SUBJECT, 'A long letter', 'Just inside the week', 'Just outside the week', 'Old budget',
        ]);
      } finally {
        await tools.close();
      }
    });

    it('matches a word of the body or the headers (IMAP TEXT), Korean in quoted-printable included', async () => {
      const tools = registry();
      try {
        expect(subjects(await tools.run('email', 'search', { query: 'quarterly-budget-Kx7' }))).toEqual(['Quarterly budget']);
        expect(subjects(await tools.run('email', 'search', { query: 'budget', days: 30 }))).toEqual(['Quarterly budget', 'Old budget']);
        expect(subjects(await tools.run('email', 'search', { query: '금요일' }))).toEqual([KOREAN_SUBJECT]);
        expect(subjects(await tools.run('email', 'search', { query: 'green-tonight-Qz' }))).toEqual(['Server report']);
        const none = expectSuccess(await tools.run('email', 'search', { query: 'zebra', days: 3 }));
        expect(none.data).toEqual([]);
        expect(none.summary).toBe("No messages in the last 3 days matched 'zebra'.");
      } finally {
        await tools.close();
      }
    });

    it('searches another folder by the name a folder hint gives, ignoring case, and names the folders there are when it is missing', async () => {
      const tools = registry();
      try {
        const hits = expectSuccess(await tools.run('email', 'search', { folder: 'work' })).data as EmailHit[];
        expect(hits).toEqual([{ uid: uids['invoice'], folder: 'Work', from: 'Shop <shop@example.org>', subject: 'Invoice 42', date: at(DAY).toISOString() }]);
        const missing = expectFailure(await tools.run('email', 'search', { folder: 'Gmail' }), 'not_found');
        expect(missing).toContain("'Gmail'");
        expect(missing).toContain('Work');
      } finally {
        await tools.close();
      }
    });

    it('reads the harmless variants models write: null or blank for absent, a number of days as text', async () => {
      const tools = registry();
      try {
        expect(subjects(await tools.run('email', 'search', { query: null, days: '1', folder: '' }))).toEqual(['Server report', 'Quarterly budget']);
        expect(expectSuccess(await tools.run('email', 'read', { uid: String(uids['budget']), folder: null })).data).toMatchObject({ subject: 'Quarterly budget' });
      } finally {
        await tools.close();
      }
    });

    it(`returns at most ${EMAIL_SEARCH_LIMIT} messages`, async () => {
      const extra = Array.from({ length: EMAIL_SEARCH_LIMIT + 3 }, (_, i) => ({
        raw: plain('Bulk <bulk@example.org>', `Bulk ${i}`, 'bulk'),
        date: at(HOUR + i * 60_000),
        folder: 'Bulk',
      }));
      await dovecot.seed(extra);
      const tools = registry();
      try {
        const got = subjects(await tools.run('email', 'search', { folder: 'Bulk' }));
        expect(got).toEqual(Array.from({ length: EMAIL_SEARCH_LIMIT }, (_, i) => `Bulk ${i}`));
      } finally {
        await tools.close();
      }
    });
  });

  describe('read', () => {
    it('decodes a quoted-printable body with an encoded-word Korean subject', async () => {
      const tools = registry();
      try {
        const result = expectSuccess(await tools.run('email', 'read', { uid: uids['korean'] }));
        expect(result.data).toMatchObject({ uid: uids['korean'], folder: 'INBOX', subject: KOREAN_SUBJECT, body: KOREAN_BODY, truncated: false });
        expect((result.data as { from: string }).from).toContain('김철수');
        expect(result.summary).toContain(KOREAN_BODY);
      } finally {
        await tools.close();
      }
    });

    it('reduces base64 HTML to text, reads from a named folder, and answers not_found for a uid that is not there', async () => {
      const tools = registry();
      try {
        const html = expectSuccess(await tools.run('email', 'read', { uid: String(uids['html']) })).data as { body: string };
        expect(html.body).toContain('green-tonight-Qz');
        expect(html.body).not.toMatch(/<[a-z]/i);
        const invoice = expectSuccess(await tools.run('email', 'read', { uid: uids['invoice'], folder: 'Work' })).data as { body: string };
        expect(invoice.body).toBe('invoice-body-Pw3: 42 EUR');
        expect(expectFailure(await tools.run('email', 'read', { uid: 99_999 }), 'not_found')).toBe(en.tools.emailNotFound);
        expect(expectFailure(await tools.run('email', 'read', { uid: 'abc' }), 'bad_tool_params')).toContain('uid');
      } finally {
        await tools.close();
      }
    });

    it(`cuts a long body at ${EMAIL_BODY_MAX_CHARS} characters, and the payload the model phrases stays within ${TOOL_PAYLOAD_MAX_CHARS}`, async () => {
      const runner = createToolRunner({ store: noStore, config: emailConfig(), messages: en, now: () => NOW, log: capturingLog().log });
      try {
        const outcome = await runner.run({ jobId: 'job-long', tool: 'email', operation: 'read', params: { uid: uids['long'] } }, new AbortController().signal);
        if (!outcome.ok) throw new Error(outcome.message);
        const data = outcome.data as { body: string; truncated: boolean };
        expect(data.truncated).toBe(true);
        expect(data.body).toBe(`${LONG_BODY.slice(0, EMAIL_BODY_MAX_CHARS)}${TRUNCATED_MARKER}`);
        expect(outcome.summary).toContain(en.tools.emailTruncated);
        expect(outcome.payload.length).toBeLessThanOrEqual(TOOL_PAYLOAD_MAX_CHARS + TRUNCATED_MARKER.length);
      } finally {
        await runner.close();
      }
    });
  });

  describe('the connection', () => {
    it('is opened once and reused, opened again after it drops, and closed with the registry', async () => {
      const relay = await startRelay(dovecot.port);
      const tools = registry({ config: emailConfig({ url: `imap://127.0.0.1:${relay.port}` }) });
      try {
        await Promise.all([tools.run('email', 'search', {}), tools.run('email', 'search', { query: 'budget' }), tools.run('email', 'read', { uid: uids['budget'] })]).then(
          (results) => results.forEach(expectSuccess),
        );
        expectSuccess(await tools.run('email', 'search', { folder: 'Work' }));
        expect(relay.connections()).toBe(1);
        await relay.cutAll();
        // The next call finds the connection gone and opens another, the caller none the wiser.
        expect(subjects(await tools.run('email', 'search', { days: 1 }))).toEqual(['Server report', 'Quarterly budget']);
        expect(relay.connections()).toBe(2);
        // Closing the registry (runtime.stop does) logs out: the connection ends from our side.
        await tools.close();
        await relay.idle();
        expect(relay.connections()).toBe(2);
      } finally {
        await tools.close();
        await relay.close();
      }
    });

    it('ends a call on a server that never greets with tool_timeout, and drops its socket', async () => {
      const accepted: Socket[] = [];
      const silent = createServer((socket) => void accepted.push(socket));
      silent.listen(0, '127.0.0.1');
      await once(silent, 'listening');
      const port = (silent.address() as { port: number }).port;
      const tools = registry({ config: emailConfig({ url: `imap://127.0.0.1:${port}` }), timeoutMs: 200 });
      try {
        expect(expectFailure(await tools.run('email', 'search', {}), 'tool_timeout')).toBe(en.tools.timeout);
        expect(accepted).toHaveLength(1);
        const socket = accepted[0]!;
        if (!socket.destroyed && !socket.readableEnded) await once(socket, 'end');
      } finally {
        await tools.close();
        for (const socket of accepted) socket.destroy();
        silent.close();
      }
    });

    it('ends a call on a server that stopped answering mid-session with tool_timeout, and connects again once it answers', async () => {
      const relay = await startRelay(dovecot.port);
      const tools = registry({ config: emailConfig({ url: `imap://127.0.0.1:${relay.port}` }), timeoutMs: 300 });
      try {
        expectSuccess(await tools.run('email', 'search', {}));
        dovecot.pause();
        try {
          expect(expectFailure(await tools.run('email', 'search', { query: 'budget' }), 'tool_timeout')).toBe(en.tools.timeout);
          // The timed-out call dropped the connection it was waiting on.
          await relay.idle();
        } finally {
          dovecot.resume();
        }
        expect(subjects(await tools.run('email', 'search', { query: 'budget' }))).toEqual(['Quarterly budget']);
        expect(relay.connections()).toBe(2);
      } finally {
        await tools.close();
        await relay.close();
      }
    });

    it('answers tool_failed with a sentence when the server is down or refuses the login, without the password', async () => {
      const down = registry({ config: emailConfig({ url: `imap://127.0.0.1:${await closedPort()}` }) });
      const wrong = registry({ config: emailConfig({ password: 'not-the-password-Vb8' }) });
      try {
        expect(expectFailure(await down.run('email', 'search', {}), 'tool_failed')).toBe(en.tools.emailUnreachable);
        const refused = expectFailure(await wrong.run('email', 'read', { uid: 1 }), 'tool_failed');
        expect(refused).toBe(en.tools.emailLoginFailed);
        expect(refused).not.toContain('not-the-password-Vb8');
      } finally {
        await down.close();
        await wrong.close();
      }
    });

    it('logs in with a password from passwordEnv, and fails readably when the variable is not set', async () => {
      const variable = `SB_TEST_IMAP_PASSWORD_${process.pid}`;
      process.env[variable] = dovecot.password;
      const fromEnv = registry({ config: emailConfig({ password: undefined, passwordEnv: variable }) });
      const unset = registry({ config: emailConfig({ password: undefined, passwordEnv: `${variable}_UNSET` }) });
      try {
        expect(subjects(await fromEnv.run('email', 'search', { days: 1 }))).toEqual(['Server report', 'Quarterly budget']);
        expect(expectFailure(await unset.run('email', 'search', {}), 'tool_failed')).toBe(en.tools.emailLoginFailed);
      } finally {
        delete process.env[variable];
        await fromEnv.close();
        await unset.close();
      }
    });

    it('logs each failure once with the job id and the reason in words, never the password or a message text', async () => {
      const { log, lines } = capturingLog();
      const down = createToolRunner({ store: noStore, config: emailConfig({ url: `imap://127.0.0.1:${await closedPort()}` }), messages: en, now: () => NOW, log });
      const wrong = createToolRunner({ store: noStore, config: emailConfig({ password: 'not-the-password-Vb8' }), messages: en, now: () => NOW, log });
      const good = createToolRunner({ store: noStore, config: emailConfig(), messages: en, now: () => NOW, log });
      const signal = new AbortController().signal;
      try {
        expect(await down.run({ jobId: 'job-down', tool: 'email', operation: 'search', params: {} }, signal)).toMatchObject({ ok: false, reason: 'tool_failed' });
        expect(await wrong.run({ jobId: 'job-login', tool: 'email', operation: 'search', params: {} }, signal)).toMatchObject({ ok: false, reason: 'tool_failed' });
        for (const uid of [uids['korean'], uids['budget'], uids['html'], uids['invoice']]) {
          await good.run({ jobId: 'job-read', tool: 'email', operation: 'read', params: { uid, folder: uid === uids['invoice'] ? 'Work' : undefined } }, signal);
        }
      } finally {
        await Promise.all([down.close(), wrong.close(), good.close()]);
      }
      const failures = lines.filter((line) => line['msg'] === 'a tool failed');
      expect(failures.map((line) => [line['jobId'], line['reason']])).toEqual([
        ['job-down', 'tool_failed'],
        ['job-login', 'tool_failed'],
      ]);
      expect(String(failures[0]?.['cause'])).toMatch(/unreachable \(connection refused, ECONNREFUSED\)/);
      expect(String(failures[1]?.['cause'])).toMatch(/refused the login/);
      const text = JSON.stringify(lines);
      for (const secret of [dovecot.password, 'not-the-password-Vb8', ...BODY_MARKERS, KOREAN_SUBJECT]) expect(text).not.toContain(secret);
    });
  });

  describe('configuration', () => {
    it('wants exactly one of password and passwordEnv, an imap(s) URL on an allowed host, and masks the password', () => {
      const base = { url: 'imap://127.0.0.1:1143', user: 'alice' };
      expect(() => parseConfig({ tools: { email: base } })).toThrow(/tools\.email\.password: expected exactly one of password and passwordEnv/);
      expect(() => parseConfig({ tools: { email: { ...base, password: 'a', passwordEnv: 'B' } } })).toThrow(/exactly one/);
      expect(() => parseConfig({ tools: { email: { ...base, url: 'http://127.0.0.1:1143', password: 'a' } } })).toThrow(/tools\.email\.url/);
      expect(() => parseConfig({ tools: { email: { ...base, url: 'imaps://mail.example.org', password: 'a' } } })).toThrow(
        /tools\.email\.url: host "mail\.example\.org" is not in egress\.allowHosts/,
      );
      expect(() => parseConfig({ tools: { email: { ...base, pasword: 'a' } } })).toThrow(/tools\.email\.pasword: unknown key/);
      const config = parseConfig({
        tools: { email: { ...base, url: 'imaps://mail.example.org:993', password: 'secret-pw-Hj2' } },
        egress: { allowHosts: ['127.0.0.1', '*.example.org'] },
      });
      expect(config.tools.email).toEqual({ ...base, url: 'imaps://mail.example.org:993', password: 'secret-pw-Hj2', folder: 'INBOX', rejectUnauthorized: true });
      const printed = JSON.stringify(maskSecrets(config));
      expect(printed).not.toContain('secret-pw-Hj2');
      expect(JSON.stringify(maskSecrets(parseConfig({ tools: { email: { ...base, passwordEnv: 'MAIL_PW' } } })))).toContain('"passwordEnv":"MAIL_PW"');
    });
  });

  describe('through the gateway', () => {
    let small: FakeBackend;
    let large: FakeBackend;
    let gateway: TestGateway;
    let client: TestClient;
    const captured = capturingLog('info');

    beforeAll(async () => {
      small = await startFakeBackend();
      large = await startFakeBackend();
      scriptModels(small, large, {
        classify: () => JSON.stringify({ action: 'tools', tool: 'email', operation: 'search', params: { query: 'budget', days: 7 } }),
        phrase: (content) => ({ content: content.includes('Quarterly budget') ? 'You have one budget mail from Bob.' : 'phrased something else' }),
      });
      gateway = await startTestGateway({
        classifier: small,
        reasoner: large,
        config: { tools: { email: { url: dovecot.url, user: dovecot.user, password: dovecot.password } } },
        deps: { now: () => NOW, log: captured.log },
      });
      client = await TestClient.connect(gateway.wsUrl);
    }, 30_000);

    afterAll(async () => {
      client?.close();
      await gateway?.close();
      await small?.close();
      await large?.close();
      // Running again for whatever follows, should the test have stopped at its failure.
      if (dovecot !== undefined) await dovecot.start();
    });

    it('answers from the mailbox, ends tool_failed in words while Dovecot is down, and works again once it is back', async () => {
      const first = await client.chat('any mail about the budget this week?');
      const firstEvents = await client.finished(first.jobId);
      expect(firstEvents.map((e) => e.event)).toContain('done');
      expect(client.answer(first.jobId)).toBe('You have one budget mail from Bob.');

      await dovecot.stop();
      const second = await client.chat('and now, any mail about the budget?');
      const secondEvents = await client.finished(second.jobId);
      const ended = secondEvents.at(-1);
      expect(ended?.event).toBe('error');
      expect(ended?.data).toMatchObject({ reason: 'tool_failed', message: en.tools.emailUnreachable });

      await dovecot.start();
      const third = await client.chat('and once more: budget mail?');
      const thirdEvents = await client.finished(third.jobId);
      expect(thirdEvents.at(-1)?.event).toBe('done');
      expect(client.answer(third.jobId)).toBe('You have one budget mail from Bob.');

      const failures = captured.lines.filter((line) => line['msg'] === 'a tool failed');
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({ jobId: second.jobId, reason: 'tool_failed', tool: 'email', operation: 'search' });
      const text = JSON.stringify(captured.lines);
      for (const secret of [dovecot.password, ...BODY_MARKERS]) expect(text).not.toContain(secret);
    }, 30_000);
  });
});
