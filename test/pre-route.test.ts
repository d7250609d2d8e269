/**
 * Keyword pre-routing with the real rules from `prompts/pre-route.json`, Korean and English, at fixed
 * instants (the server's own time zone must not matter).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { localDate, localWeek, preRoute, type PreRouteContext } from '../src/jobs/pre-route.js';
import { loadPrompts } from '../src/prompts/load-prompts.js';
import type { PreRouteRules } from '../src/prompts/pre-route-rules.js';

/** Friday 2025-03-14, 10:00 in Seoul (01:00 UTC). */
const FRIDAY = new Date('2025-03-14T01:00:00Z');
const ctx: PreRouteContext = { now: FRIDAY, timeZone: 'Asia/Seoul', hasPendingDraft: false };
const withDraft: PreRouteContext = { ...ctx, hasPendingDraft: true };

let rules: PreRouteRules;
beforeAll(async () => {
  rules = (await loadPrompts()).preRoute;
});

const route = (text: string, context: PreRouteContext = ctx) => preRoute(text, rules, context);
const calendarSearch = (from: string, to: string) => ({
  action: 'tools',
  tool: 'calendar',
  operation: 'search',
  params: { date_from: from, date_to: to },
});
const calendarToday = { action: 'tools', tool: 'calendar', operation: 'today', params: {} };
const documentSearch = (query: string) => ({ action: 'tools', tool: 'document', operation: 'search', params: { query } });

describe('calendar', () => {
  it('answers today, tomorrow and this week in Korean and English', () => {
    expect(route('오늘 일정 알려줘')).toEqual(calendarToday);
    expect(route("What's on my calendar today?")).toEqual(calendarToday);
    expect(route('내일 회의 있어?')).toEqual(calendarSearch('2025-03-15', '2025-03-15'));
    expect(route('Any meetings tomorrow?')).toEqual(calendarSearch('2025-03-15', '2025-03-15'));
    expect(route('이번 주 스케줄 보여줘')).toEqual(calendarSearch('2025-03-10', '2025-03-16'));
    expect(route('이번주 약속 뭐 있지')).toEqual(calendarSearch('2025-03-10', '2025-03-16'));
    expect(route('Show my schedule for this week')).toEqual(calendarSearch('2025-03-10', '2025-03-16'));
  });

  it('defaults to today when no day is named', () => {
    expect(route('일정 알려줘')).toEqual(calendarToday);
    expect(route('  CALENDAR  ')).toEqual(calendarToday);
  });

  it('leaves creating an event to the classifier, which extracts the parameters', () => {
    expect(route('내일 오후 3시에 회의 잡아줘')).toBeNull();
    expect(route('다음 주 월요일 치과 약속 등록해 줘')).toBeNull();
    expect(route('Add a meeting with Jane tomorrow at 3pm')).toBeNull();
    expect(route('Schedule a call on the calendar for Friday')).toBeNull();
  });

  it('matches English words whole: "add" is not in "address"', () => {
    expect(route('What is the address of the meeting today?')).toEqual(calendarToday);
  });

  it('counts days in the given time zone, not the server’s', () => {
    // Sunday 16:00 UTC is already Monday 01:00 in Seoul: a new week there.
    const mondayInSeoul = { ...ctx, now: new Date('2025-03-16T16:00:00Z') };
    expect(route('이번 주 일정', mondayInSeoul)).toEqual(calendarSearch('2025-03-17', '2025-03-23'));
    expect(route('이번 주 일정', { ...mondayInSeoul, timeZone: 'UTC' })).toEqual(
      calendarSearch('2025-03-10', '2025-03-16'),
    );
    // Sunday belongs to the week that started on the Monday before.
    const sunday = { ...ctx, now: new Date('2025-03-16T05:00:00Z') };
    expect(route('this week calendar', sunday)).toEqual(calendarSearch('2025-03-10', '2025-03-16'));
    // Across the end of a year and a leap day.
    expect(route('내일 일정', { ...ctx, now: new Date('2024-12-31T14:59:00Z') })).toEqual(
      calendarSearch('2025-01-01', '2025-01-01'),
    );
    expect(route('내일 일정', { ...ctx, now: new Date('2024-02-28T03:00:00Z') })).toEqual(
      calendarSearch('2024-02-29', '2024-02-29'),
    );
  });

  it('uses Asia/Seoul when no zone is given', () => {
    const late = new Date('2025-03-14T20:00:00Z'); // Saturday 05:00 in Seoul
    expect(preRoute('tomorrow calendar', rules, { now: late, hasPendingDraft: false })).toEqual(
      calendarSearch('2025-03-16', '2025-03-16'),
    );
  });
});

describe('email', () => {
  it('searches the last 7 days, or the last day when today is mentioned', () => {
    const search = (days: number, folder?: string) => ({
      action: 'tools',
      tool: 'email',
      operation: 'search',
      params: folder === undefined ? { query: '', days } : { query: '', days, folder },
    });
    expect(route('메일 확인해줘')).toEqual(search(7));
    expect(route('오늘 온 이메일 있어?')).toEqual(search(1));
    expect(route('Any new emails today?')).toEqual(search(1));
    expect(route('회사 메일 보여줘')).toEqual(search(7, 'Work'));
    expect(route('지메일 편지함 확인')).toEqual(search(7, 'Gmail'));
    expect(route('check my personal inbox')).toEqual(search(7, 'INBOX'));
  });

  it('leaves sending, replying and forwarding to the classifier', () => {
    expect(route('김 과장에게 메일 보내줘')).toBeNull();
    expect(route('Reply to the last email')).toBeNull();
  });
});

describe('documents', () => {
  it('searches with the message minus the request words', () => {
    expect(route('프로젝트 예산 문서 찾아줘')).toEqual(documentSearch('프로젝트 예산'));
    expect(route('자료에서 환율 전망 검색 좀 해줘')).toEqual(documentSearch('환율 전망'));
    expect(route('find the document about deployment checklist')).toEqual(documentSearch('deployment checklist'));
    expect(route('Search my notes for Kubernetes upgrade!')).toEqual(documentSearch('kubernetes upgrade'));
    expect(route('look up docs on the budget')).toEqual(documentSearch('budget'));
  });

  it('needs a document word and a verb, and a query left over', () => {
    expect(route('문서 찾아줘')).toBeNull();
    expect(route('find my files')).toBeNull();
    expect(route('예산 문서 어디 있어')).toBeNull();
  });

  it('leaves a message that fits two domains to the classifier', () => {
    // A meeting word and a document request at once.
    expect(route('회의록 문서 찾아줘')).toBeNull();
    expect(route('메일 첨부 파일 찾아줘')).toBeNull();
  });
});

describe('system status', () => {
  it('recognises status questions', () => {
    expect(route('시스템 상태 알려줘')).toEqual({ action: 'systemStatus' });
    expect(route('서버 지금 바빠?')).toEqual({ action: 'systemStatus' });
    expect(route('모델 잘 돌아가고 있어?')).toEqual({ action: 'systemStatus' });
    expect(route("What's the server status?")).toEqual({ action: 'systemStatus' });
    expect(route('Is the backend busy right now?')).toEqual({ action: 'systemStatus' });
  });

  it('does not take every mention of a model for one', () => {
    expect(route('언어 모델이 뭐야?')).toBeNull();
    expect(route('How do I load a model in PyTorch?')).toBeNull();
  });
});

describe('answers to a pending draft', () => {
  it('confirms or cancels with whole-message answers while a draft waits', () => {
    // The one way to confirm a draft: the user's own words, never a tool call a model could produce.
    const confirm = { action: 'confirmDraft' };
    for (const yes of ['네', '응!', 'ㅇㅇ', '확인', '좋아요.', 'Yes', 'OK', '  sure  ']) {
      expect(route(yes, withDraft)).toEqual(confirm);
    }
    for (const no of ['아니', '취소', 'ㄴㄴ', 'No.', 'cancel', 'never mind']) {
      expect(route(no, withDraft)).toEqual({ action: 'cancelDraft' });
    }
  });

  it('ignores them without a draft, and longer messages with one', () => {
    expect(route('네', ctx)).toBeNull();
    expect(route('취소', ctx)).toBeNull();
    expect(route('yes', ctx)).toBeNull();
    expect(route('네 그런데 시간을 4시로 바꿔 줘', withDraft)).toBeNull();
    // Other requests still pre-route while a draft waits.
    expect(route('내일 일정', withDraft)).toEqual(calendarSearch('2025-03-15', '2025-03-15'));
  });
});

it('passes ordinary chat and empty text to the classifier', () => {
  expect(route('안녕! 잘 지냈어?')).toBeNull();
  expect(route('Explain how attention works in transformers')).toBeNull();
  expect(route('')).toBeNull();
  expect(route('   ')).toBeNull();
});

describe('date helpers', () => {
  it('give local dates and weeks independent of the server zone', () => {
    expect(localDate(FRIDAY)).toBe('2025-03-14');
    expect(localDate(FRIDAY, 'America/Los_Angeles')).toBe('2025-03-13');
    expect(localDate(FRIDAY, 'Asia/Seoul', -14)).toBe('2025-02-28');
    expect(localWeek(FRIDAY)).toEqual({ monday: '2025-03-10', sunday: '2025-03-16' });
    // Across a month end and a DST change (US: 2025-03-09).
    expect(localWeek(new Date('2025-03-02T12:00:00Z'), 'America/New_York')).toEqual({
      monday: '2025-02-24',
      sunday: '2025-03-02',
    });
  });
});
