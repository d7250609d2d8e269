import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load-config.js';
import { describeNow } from '../src/jobs/job-requests.js';
import { loadPrompts, type Prompts } from '../src/prompts/load-prompts.js';
import { messageLocale } from '../src/prompts/message-locale.js';
import { createJobToolkit } from '../src/runtime/create-job-toolkit.js';

/** The user's language and time: notices, errors and prompts follow the message; dates follow persona.timeZone. */

let prompts: Prompts;
beforeAll(async () => {
  prompts = await loadPrompts();
});

/** 00:30 on Monday 30 November in Seoul, still 15:30 on Sunday 29 November in UTC. */
const AFTER_MIDNIGHT_IN_SEOUL = new Date('2026-11-29T15:30:00Z');

const toolkit = (persona: Record<string, string>) =>
  createJobToolkit({ config: parseConfig({ persona }), prompts, now: () => AFTER_MIDNIGHT_IN_SEOUL, reasonerTurns: 10 });

describe('the language of a message', () => {
  it('is Korean with Hangul, else the persona’s locale unless that is Korean, then English', () => {
    expect(messageLocale('내일 일정 알려줘', 'en')).toBe('ko');
    expect(messageLocale('ok 고마워', 'de')).toBe('ko');
    expect(messageLocale('what is on tomorrow?', 'ko')).toBe('en');
    expect(messageLocale('what is on tomorrow?', 'ko-KR')).toBe('en');
    expect(messageLocale('was steht morgen an?', 'de')).toBe('de');
    expect(messageLocale('12:30?', 'en')).toBe('en');
  });

  it('gives an English message English notices, errors and prompts, and a Korean one Korean, whatever the persona’s locale', () => {
    const en = prompts.messages('en');
    const ko = prompts.messages('ko');
    for (const locale of ['ko', 'en']) {
      const base = toolkit({ locale });
      const english = base.forMessage!('What is on my calendar tomorrow?');
      const korean = base.forMessage!('내일 일정 알려줘');
      expect(english.message('analysing')).toBe(en.processing.analysing);
      expect(english.message('backendUnavailable')).toBe(en.errors.backendUnavailable);
      expect(korean.message('analysing')).toBe(ko.processing.analysing);
      expect(korean.message('backendUnavailable')).toBe(ko.errors.backendUnavailable);
      expect(english.systemPrompt('classifier')).toMatch(/^You are 이드\./);
      expect(korean.systemPrompt('classifier')).toMatch(/^당신은 이드입니다\./);
      expect(english.locale).toBe('en');
      expect(korean.locale).toBe('ko');
    }
    // A language with no prompt set of its own gets the English one, told to answer in that language.
    const german = toolkit({ locale: 'de' }).forMessage!('Was steht morgen an?');
    expect(german.systemPrompt('reasoner')).toMatch(/^You are 이드\./);
    expect(german.systemPrompt('reasoner')).toContain('Deutsch');
    expect(german.message('analysing')).toBe(en.processing.analysing);
  });
});

describe('persona.timeZone', () => {
  it('defaults to Asia/Seoul for Korean, to the host’s zone otherwise, and refuses a name that is not a zone', () => {
    expect(parseConfig({}).persona.timeZone).toBe('Asia/Seoul');
    expect(parseConfig({ persona: { locale: 'en' } }).persona.timeZone).toBe(Intl.DateTimeFormat().resolvedOptions().timeZone);
    expect(parseConfig({ persona: { locale: 'en', timeZone: 'Europe/Berlin' } }).persona.timeZone).toBe('Europe/Berlin');
    expect(() => parseConfig({ persona: { timeZone: 'Mars/Olympus' } })).toThrow(/persona\.timeZone: expected an IANA time zone name/);
  });

  it('is what "tomorrow" means and what the models are told, around midnight in Seoul', () => {
    const tomorrow = (timeZone: string, text: string) => {
      const kit = toolkit({ locale: 'en', timeZone }).forMessage!(text);
      return kit.preRoute(text, false, kit.now());
    };
    const search = (day: string) => ({ action: 'tools', tool: 'calendar', operation: 'search', params: { date_from: day, date_to: day } });
    // In Seoul it is already Monday the 30th: tomorrow is 1 December. In UTC it is still Sunday the 29th.
    expect(tomorrow('Asia/Seoul', '내일 회의 있어?')).toEqual(search('2026-12-01'));
    expect(tomorrow('Asia/Seoul', 'Any meetings tomorrow?')).toEqual(search('2026-12-01'));
    expect(tomorrow('UTC', 'Any meetings tomorrow?')).toEqual(search('2026-11-30'));
    expect(tomorrow('UTC', '내일 회의 있어?')).toEqual(search('2026-11-30'));

    const seoul = toolkit({ locale: 'ko' }).forMessage!('오늘 며칠이야?');
    expect(seoul.timeZone).toBe('Asia/Seoul');
    expect(describeNow(seoul.now(), seoul.timeZone, seoul.locale)).toContain('(2026-11-30, Asia/Seoul)');
    const utc = toolkit({ locale: 'en', timeZone: 'UTC' }).forMessage!('what day is it?');
    expect(describeNow(utc.now(), utc.timeZone, utc.locale)).toContain('(2026-11-29, UTC)');
  });
});
