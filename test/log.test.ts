import { describe, expect, it } from 'vitest';
import { logFormat } from '../src/log.js';
import { runScript } from './helpers/run-script.js';

describe('log format', () => {
  it('is pretty on a terminal and JSON otherwise, unless LOG_FORMAT says which', () => {
    expect(logFormat({}, true)).toBe('pretty');
    expect(logFormat({}, false)).toBe('json');
    expect(logFormat({ LOG_FORMAT: 'json' }, true)).toBe('json');
    expect(logFormat({ LOG_FORMAT: ' Pretty ' }, false)).toBe('pretty');
    expect(logFormat({ LOG_FORMAT: 'xml' }, false)).toBe('json');
  });

  it('writes coloured, readable lines with LOG_FORMAT=pretty, and JSON lines with LOG_FORMAT=json', async () => {
    const run = await runScript('test/helpers/log-sample.ts', [], { env: { LOG_FORMAT: 'pretty' } });
    expect(run.code).toBe(0);
    const lines = run.stdout.split('\n');
    // `[HH:MM:ss.mmm] INFO: message`, level and message coloured, then the fields indented.
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] \u001b\[32mINFO\u001b\[39m: \u001b\[36mbackend up \(http:\/\/127\.0\.0\.1:1\/v1\)\u001b\[39m$/);
    expect(run.stdout).toContain('healthMs');
    expect(run.stdout).not.toContain('"level"');
    const json = await runScript('test/helpers/log-sample.ts', [], { env: { LOG_FORMAT: 'json' } });
    expect(JSON.parse(json.stdout.split('\n')[0]!)).toMatchObject({ level: 30, msg: 'backend up (http://127.0.0.1:1/v1)', healthMs: 3 });
  });
});
