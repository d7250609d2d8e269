import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';

/** What each syntax error means, in words, by jsonc-parser's name for it. */
const MEANING: Record<string, string> = {
  InvalidSymbol: 'an unexpected character',
  InvalidNumberFormat: 'a number written in a way JSON does not allow',
  PropertyNameExpected: 'a property name in double quotes was expected',
  ValueExpected: 'a value was expected',
  ColonExpected: 'a colon was expected',
  CommaExpected: 'a comma was expected',
  CloseBraceExpected: 'a closing } was expected',
  CloseBracketExpected: 'a closing ] was expected',
  EndOfFileExpected: 'nothing was expected after the value',
  InvalidCommentToken: 'comments are not allowed in JSON',
  UnexpectedEndOfComment: 'a comment is not closed (and comments are not allowed in JSON)',
  UnexpectedEndOfString: 'a string is not closed',
  UnexpectedEndOfNumber: 'a number ends too early',
  InvalidUnicode: 'an invalid \\u escape',
  InvalidEscapeCharacter: 'an invalid escape after \\',
  InvalidCharacter: 'a character that must be escaped inside a string',
};

/**
 * Where a JSON text that `JSON.parse` refused goes wrong, for a person: `FILE:LINE:COLUMN: what`, then
 * the line with a caret under the column. Node's own message often has no position at all.
 */
export function describeJsonSyntaxError(file: string, text: string, fallback: string): string {
  const errors: ParseError[] = [];
  parse(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  const first = errors[0];
  if (!first) return `${file}: not valid JSON (${fallback})`;
  const before = text.slice(0, first.offset);
  const line = before.split('\n').length;
  const lineStart = before.lastIndexOf('\n') + 1;
  const column = first.offset - lineStart + 1;
  const lineText = text.slice(lineStart).split('\n')[0]!.replace(/\r$/, '');
  let meaning = MEANING[printParseErrorCode(first.error)] ?? 'a syntax error';
  if (text.trim().length === 0) meaning = 'the file is empty (write {} for all defaults)';
  else if (/^[}\]]/.test(text.slice(first.offset)) && /,\s*$/.test(before)) meaning = 'a comma before a closing } or ] is not allowed in JSON';
  else if (/^[A-Za-z_$][\w$]*\s*:/.test(text.slice(first.offset))) meaning = 'a property name needs double quotes ("name": …)';
  else if (text[first.offset] === "'") meaning = 'strings need double quotes, not single quotes';
  const gutter = `${line} | `;
  return `${file}:${line}:${column}: not valid JSON: ${meaning}\n      ${gutter}${lineText}\n      ${' '.repeat(gutter.length - 2)}| ${' '.repeat(column - 1)}^`;
}
