import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, hostAllowed, impliedSettings, loadConfig, parseConfig } from '../src/config/load-config.js';

function problemsOf(raw: unknown): string[] {
  try {
    parseConfig(raw);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('config', () => {
  it('defaults to one OpenAI-compatible backend on Ollama’s port and freezes the result', () => {
    const config = parseConfig({});
    expect(config.server).toEqual({ host: '127.0.0.1', port: 8787 });
    expect(config.backends.local?.baseUrl).toBe('http://127.0.0.1:11434/v1');
    expect(config.backends.local?.concurrency).toBe(1);
    expect(config.limits).toEqual({
      messageChars: 8000,
      turns: 40,
      totalChars: 32000,
      maxActiveJobs: 64,
      pendingJobsPerOwner: 256,
      answerChars: 200_000,
      connectionsPerOwner: 64,
      framesPerSecond: 20,
    });
    expect(Object.isFrozen(config.backends)).toBe(true);
  });

  it('takes a one-backend config as it is: both roles and one mode are that backend, and the start log says so', () => {
    const config = parseConfig({ backends: { ollama: { baseUrl: 'http://127.0.0.1:11434/v1', model: 'qwen3:8b' } } });
    expect(config.roles).toEqual({ classifier: 'ollama', reasoner: 'ollama' });
    expect(config.modes).toEqual({ ollama: 'ollama' });
    expect(impliedSettings(config)).toEqual(['roles.classifier and roles.reasoner: "ollama" (the only backend)', 'modes: ollama (one per backend)']);
  });

  it('defaults what is not written to the first backend, checks only the names the user wrote, and makes mode names of backend names', () => {
    const backends = {
      'Small.Model': { baseUrl: 'http://127.0.0.1:8800/v1', model: 's' },
      big: { baseUrl: 'http://127.0.0.1:8801/v1', model: 'b' },
      auto: { baseUrl: 'http://127.0.0.1:8802/v1', model: 'a' },
    };
    const partial = parseConfig({ backends, roles: { reasoner: 'big' } });
    expect(partial.roles).toEqual({ classifier: 'Small.Model', reasoner: 'big' });
    // `auto` is the pipeline, never a mode; other names are made valid mode names.
    expect(partial.modes).toEqual({ 'small-model': 'Small.Model', big: 'big' });
    expect(impliedSettings(partial)).toEqual([
      'roles.classifier: "Small.Model" (the first backend)',
      'modes: small-model → Small.Model, big (one per backend)',
    ]);
    // Written modes are kept as written (none implied), and everything written is checked.
    const written = parseConfig({ backends, roles: { classifier: 'big', reasoner: 'big' }, modes: { deep: 'big' } });
    expect(written.modes).toEqual({ deep: 'big' });
    expect(impliedSettings(written)).toEqual([]);
    expect(problemsOf({ backends, roles: { classifier: 'local' } })).toEqual([
      'roles.classifier: "local" is not a backend, expected one of the configured backends (Small.Model, big, auto)',
    ]);
    // No backend at all is one problem, not one per implied name.
    expect(problemsOf({ backends: {} })).toEqual(['backends: expected at least one backend']);
  });

  it('accepts the DESIGN example', () => {
    const config = parseConfig({
      server: { host: '127.0.0.1', port: 8787 },
      auth: { tokens: [] },
      database: { url: null, dataDir: './data' },
      backends: {
        exaone: {
          baseUrl: 'http://127.0.0.1:8800/v1', model: 'exaone-3.5-7.8b', concurrency: 1, timeoutMs: 120000,
          streamDeadlineMs: 300000, statusUrl: null, healthIntervalMs: 30000, tools: false,
        },
        gemma: { baseUrl: 'http://127.0.0.1:8801/v1', model: 'gemma-4', tools: true },
      },
      roles: { classifier: 'exaone', reasoner: 'gemma' },
      modes: { daily: 'exaone', deep: 'gemma' },
      fallback: { reasonerToClassifier: true },
      limits: { messageChars: 8000, turns: 40, totalChars: 32000, maxActiveJobs: 64 },
      egress: { allowHosts: ['127.0.0.1', 'localhost', '::1'] },
      tools: { calendar: null, email: null, documents: { enabled: true } },
      synology: null,
      persona: { name: '이드', locale: 'ko' },
    });
    expect(config.backends.gemma?.concurrency).toBe(1);
    expect(config.modes).toEqual({ daily: 'exaone', deep: 'gemma' });
  });

  it('reports one readable line per problem: unknown keys, missing role and mode backends, egress, auth', () => {
    expect(problemsOf({ server: { host: '127.0.0.1', bogus: 1 } })).toEqual([
      'server.bogus: unknown key, expected one of: host, port',
    ]);
    const problems = problemsOf({
      server: { host: '0.0.0.0' },
      backends: { a: { baseUrl: 'http://models.example.com/v1', model: 'm', statusUrl: 'http://127.0.0.1:9/status' } },
      roles: { classifier: 'a', reasoner: 'missing' },
      modes: { daily: 'nope' },
      synology: { token: 't', incomingUrl: 'https://chat.example.org/webapi' },
    });
    expect(problems).toEqual([
      'roles.reasoner: "missing" is not a backend, expected one of the configured backends (a)',
      'modes.daily: "nope" is not a backend, expected one of the configured backends (a)',
      'backends.a.baseUrl: host "models.example.com" is not in egress.allowHosts, expected one of 127.0.0.1, localhost, ::1',
      'synology.incomingUrl: host "chat.example.org" is not in egress.allowHosts, expected one of 127.0.0.1, localhost, ::1',
      'auth.tokens: expected at least one token when server.host is "0.0.0.0" (no auth is only allowed on loopback)',
    ]);
  });

  it('names the path and the expectation of type errors', () => {
    expect(problemsOf({ limits: { turns: -1 }, backends: { a: { baseUrl: 'not a url', model: '' } } })).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^limits\.turns: /),
        expect.stringMatching(/^backends\.a\.baseUrl: /),
        expect.stringMatching(/^backends\.a\.model: /),
      ]),
    );
  });

  it('matches egress hosts exactly or by *.domain, IPv6 with or without brackets', () => {
    expect(hostAllowed('::1', ['::1'])).toBe(true);
    expect(hostAllowed('[::1]', ['::1'])).toBe(true);
    expect(hostAllowed('gpu.lan.example', ['*.lan.example'])).toBe(true);
    expect(hostAllowed('evil-lan.example', ['*.lan.example'])).toBe(false);
    expect(hostAllowed('127.0.0.2', ['127.0.0.1'])).toBe(false);
  });

  it('reads --config PATH, applies env overrides, and refuses a missing or broken file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-config-'));
    const path = join(dir, 'c.json');
    writeFileSync(path, JSON.stringify({ server: { port: 1 } }));
    const config = loadConfig({ path, env: { SWITCHBOARD_PORT: '9999', SWITCHBOARD_TOKEN: 'secret-token', DATABASE_URL: 'postgres://x/y' } });
    expect(config.server.port).toBe(9999);
    expect(config.auth.tokens).toEqual(['secret-token']);
    expect(config.database.url).toBe('postgres://x/y');
    expect(() => loadConfig({ path: join(dir, 'absent.json'), env: {} })).toThrow(/cannot read the file \(ENOENT\)/);
    writeFileSync(path, '{ nope');
    expect(() => loadConfig({ path, env: {} })).toThrow(/not valid JSON/);
  });

  it('takes the per-owner and per-connection limits, and refuses ones that are not positive integers', () => {
    const config = parseConfig({ limits: { connectionsPerOwner: 3, framesPerSecond: 100, pendingJobsPerOwner: 10, answerChars: 5000 } });
    expect(config.limits).toMatchObject({ connectionsPerOwner: 3, framesPerSecond: 100, pendingJobsPerOwner: 10, answerChars: 5000 });
    expect(problemsOf({ limits: { connectionsPerOwner: 0, framesPerSecond: 1.5, pendingJobsPerOwner: -1, answerChars: '1' } })).toEqual([
      expect.stringMatching(/^limits\.pendingJobsPerOwner: /),
      expect.stringMatching(/^limits\.answerChars: /),
      expect.stringMatching(/^limits\.connectionsPerOwner: /),
      expect.stringMatching(/^limits\.framesPerSecond: /),
    ]);
  });

  it('refuses auth tokens that are empty, blank, padded, contain whitespace or are short: one line each, never the token', () => {
    expect(problemsOf({ auth: { tokens: ['', '        ', ' padded-token', 'padded-token\t', 'two words', 'short', 'good-token'] } })).toEqual([
      'auth.tokens.0: expected a token, got an empty or blank string',
      'auth.tokens.1: expected a token, got an empty or blank string',
      'auth.tokens.2: expected a token without leading or trailing whitespace',
      'auth.tokens.3: expected a token without leading or trailing whitespace',
      'auth.tokens.4: expected a token without whitespace (a Bearer header cannot carry it)',
      'auth.tokens.5: expected a token of at least 8 characters, got 5',
    ]);
    expect(parseConfig({ auth: { tokens: ['good-token'] } }).auth.tokens).toEqual(['good-token']);
  });

  it('names the key a mistyped one probably meant, and every key allowed there, one line per key', () => {
    expect(
      problemsOf({
        server: { prot: 8080 },
        backends: { a: { baseUrl: 'http://127.0.0.1:1/v1', modle: 'm', model: 'm', concurency: 2 } },
        limit: {},
        persona: { nmae: 'Ada', zzz: 1 },
      }),
    ).toEqual([
      'server.prot: unknown key, did you mean "port"? expected one of: host, port',
      'backends.a.modle: unknown key, did you mean "model"? expected one of: baseUrl, model, concurrency, timeoutMs, streamDeadlineMs, statusUrl, healthIntervalMs, tools, connectTimeoutMs, idleTimeoutMs, backgroundMaxWaitMs, apiKey',
      'backends.a.concurency: unknown key, did you mean "concurrency"? expected one of: baseUrl, model, concurrency, timeoutMs, streamDeadlineMs, statusUrl, healthIntervalMs, tools, connectTimeoutMs, idleTimeoutMs, backgroundMaxWaitMs, apiKey',
      'persona.nmae: unknown key, did you mean "name"? expected one of: name, locale, timeZone',
      'persona.zzz: unknown key, expected one of: name, locale, timeZone',
      expect.stringMatching(/^limit: unknown key, did you mean "limits"\? expected one of: server, auth, database, backends, roles, modes, /),
    ]);
  });

  it('names the environment variable behind a refused value, never showing a secret', () => {
    expect(() => loadConfig({ path: writeConfig({}), env: { SWITCHBOARD_PORT: 'abc' } })).toThrow(/server\.port \(SWITCHBOARD_PORT=abc\): /);
    expect(() => loadConfig({ path: writeConfig({}), env: { DATABASE_URL: '' , SYNOLOGY_TOKEN: 'syno-token', SYNOLOGY_INCOMING_URL: 'http://nas.example.org/x' } })).toThrow(
      /synology\.incomingUrl \(SYNOLOGY_INCOMING_URL=http:\/\/nas\.example\.org\/x\): host "nas\.example\.org" is not in egress\.allowHosts/,
    );
    try {
      loadConfig({ path: writeConfig({ database: { url: null } }), env: { DATABASE_URL: 'postgres://u:hunter2@127.0.0.1/db', SWITCHBOARD_PORT: '70000' } });
      expect.unreachable();
    } catch (error) {
      expect((error as ConfigError).problems).toEqual([expect.stringMatching(/^server\.port \(SWITCHBOARD_PORT=70000\): /)]);
      expect(String(error)).not.toContain('hunter2');
    }
  });

  it('shows where a file is not valid JSON: line and column, the line itself and a caret', () => {
    const at = (text: string): string => {
      const path = join(mkdtempSync(join(tmpdir(), 'sb-config-')), 'switchboard.config.json');
      writeFileSync(path, text);
      try {
        loadConfig({ path, env: {} });
      } catch (error) {
        return (error as ConfigError).problems[0]!.replace(path, 'FILE');
      }
      throw new Error('accepted');
    };
    expect(at('{\n  "server": { "port": 8080, },\n  "backends": {}\n}')).toBe(
      'FILE:2:29: not valid JSON: a comma before a closing } or ] is not allowed in JSON\n      2 |   "server": { "port": 8080, },\n        |                             ^',
    );
    expect(at('{\n  "server": { "port": }\n}').split('\n')[0]).toBe('FILE:2:23: not valid JSON: a value was expected');
    expect(at('{ "a": 1 } // note').split('\n')[0]).toBe('FILE:1:12: not valid JSON: comments are not allowed in JSON');
    expect(at('{ server: {} }').split('\n')[0]).toBe('FILE:1:3: not valid JSON: a property name needs double quotes ("name": …)');
    expect(at('').split('\n')[0]).toBe('FILE:1:1: not valid JSON: the file is empty (write {} for all defaults)');
  });

  it('says when a refused token came from SWITCHBOARD_TOKEN', () => {
    expect(() => loadConfig({ path: writeConfig({}), env: { SWITCHBOARD_TOKEN: '          ' } })).toThrow(
      /auth\.tokens\.0 \(SWITCHBOARD_TOKEN\): expected a token, got an empty or blank string/,
    );
  });
});

function writeConfig(raw: unknown): string {
  const path = join(mkdtempSync(join(tmpdir(), 'sb-config-')), 'c.json');
  writeFileSync(path, JSON.stringify(raw));
  return path;
}
