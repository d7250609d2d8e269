/** Reading the classifier model's answer: JSON in many wrappings, and everything that is not JSON. */
import { describe, expect, it } from 'vitest';
import { classificationSchema, parseClassification } from '../src/jobs/classification.js';

describe('parseClassification', () => {
  it('reads plain JSON for each model action', () => {
    expect(parseClassification('{"action":"direct","response":"안녕하세요!"}')).toEqual({
      action: 'direct',
      response: '안녕하세요!',
    });
    expect(parseClassification('{"action":"route"}')).toEqual({ action: 'route' });
    expect(parseClassification('{"action":"clarify","response":"언제로 잡을까요?"}')).toEqual({
      action: 'clarify',
      response: '언제로 잡을까요?',
    });
    expect(
      parseClassification(
        '{"action":"tools","tool":"calendar","operation":"search","params":{"date_from":"2025-03-20","date_to":"2025-03-22"}}',
      ),
    ).toEqual({
      action: 'tools',
      tool: 'calendar',
      operation: 'search',
      params: { date_from: '2025-03-20', date_to: '2025-03-22' },
    });
  });

  it('extracts the JSON from code fences and from prose around it', () => {
    expect(parseClassification('```json\n{"action": "route", "response": ""}\n```')).toEqual({ action: 'route' });
    expect(
      parseClassification('분류 결과는 다음과 같습니다: {"action":"tools","tool":"document","operation":"search","params":{"query":"예산"}} 이상입니다.'),
    ).toEqual({ action: 'tools', tool: 'document', operation: 'search', params: { query: '예산' } });
    // Nested braces: first `{` to last `}`.
    expect(parseClassification('Sure! {"action":"tools","tool":"email","operation":"search","params":{"query":"","days":1}}')).toEqual({
      action: 'tools',
      tool: 'email',
      operation: 'search',
      params: { query: '', days: 1 },
    });
  });

  it('ignores a <think> block before the answer', () => {
    expect(parseClassification('<think>the user wants {something}</think>\n{"action":"route"}')).toEqual({
      action: 'route',
    });
  });

  it('turns clarify without a question and tools without tool or operation into direct', () => {
    expect(parseClassification('{"action":"clarify"}')).toEqual({ action: 'direct' });
    expect(parseClassification('{"action":"clarify","response":"   "}')).toEqual({ action: 'direct' });
    expect(parseClassification('{"action":"tools","tool":"calendar"}')).toEqual({ action: 'direct' });
    expect(parseClassification('{"action":"tools","operation":"today","response":"확인해 볼게요"}')).toEqual({
      action: 'direct',
      response: '확인해 볼게요',
    });
  });

  it('reads the loose forms small models write', () => {
    expect(parseClassification('{"action":"Tools","tool":"calendar.today","params":null}')).toEqual({
      action: 'tools',
      tool: 'calendar',
      operation: 'today',
      params: {},
    });
    expect(parseClassification('{"action":"tools","tool":"document","operation":"read","params":"{\\"id\\":\\"a.md\\"}"}')).toEqual({
      action: 'tools',
      tool: 'document',
      operation: 'read',
      params: { id: 'a.md' },
    });
    expect(parseClassification('{"action":"tools","tool":"document","operation":"search","params":[1]}')).toEqual({
      action: 'tools',
      tool: 'document',
      operation: 'search',
      params: {},
    });
    expect(parseClassification('{"action":"direct","response":42}')).toEqual({ action: 'direct' });
  });

  it('answers directly for actions the model may not choose', () => {
    expect(parseClassification('{"action":"systemStatus"}')).toEqual({ action: 'direct' });
    expect(parseClassification('{"action":"cancelDraft","response":"취소할게요"}')).toEqual({
      action: 'direct',
      response: '취소할게요',
    });
  });

  it('uses unparsable text as the direct answer, without fences or backticks', () => {
    expect(parseClassification('안녕하세요! 오늘은 무엇을 도와드릴까요?')).toEqual({
      action: 'direct',
      response: '안녕하세요! 오늘은 무엇을 도와드릴까요?',
    });
    expect(parseClassification('```\n`서울`의 인구는 약 940만 명이에요.\n```')).toEqual({
      action: 'direct',
      response: '서울의 인구는 약 940만 명이에요.',
    });
    // Braces in prose that are not our JSON keep the whole text.
    expect(parseClassification('Use {"indent": 2} in the config.')).toEqual({
      action: 'direct',
      response: 'Use {"indent": 2} in the config.',
    });
  });

  it('never shows broken JSON to the user, but keeps an answer it can still read', () => {
    expect(parseClassification('{"action":"direct","response":"좋은 아침이에요! 오늘')).toEqual({
      action: 'direct',
      response: '좋은 아침이에요! 오늘',
    });
    expect(parseClassification('```json\n{"action": "tools", "tool": "calendar", \n```')).toEqual({ action: 'direct' });
    expect(parseClassification('{"answer":"hi"}')).toEqual({ action: 'direct' });
  });

  it('returns direct without a response for empty output', () => {
    expect(parseClassification('')).toEqual({ action: 'direct' });
    expect(parseClassification('  \n ``` ``` ')).toEqual({ action: 'direct' });
    expect(parseClassification('<think>hmm</think>')).toEqual({ action: 'direct' });
  });

  it('always produces a value the schema accepts', () => {
    for (const raw of ['', '{', '}{', '{"action":"tools"}', 'text', '{"action":"clarify","response":"?"}']) {
      expect(classificationSchema.safeParse(parseClassification(raw)).success).toBe(true);
    }
  });
});
