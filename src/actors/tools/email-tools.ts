/**
 * The email tool (DESIGN §6): read-only IMAP — `search` and `read`. Sending, replying and forwarding
 * are refused whatever the configuration: an assistant that can be talked into sending mail is a risk
 * the read-only use does not need.
 *
 * - `search(query, days = 7, folder?)`: messages that arrived (IMAP internal date) within the last
 *   `days` × 24 hours before the tool's clock, whose text (headers or body, IMAP TEXT) contains `query`
 *   (empty: all of them), newest first, at most {@link EMAIL_SEARCH_LIMIT}.
 * - `read(uid, folder?)`: the message's decoded text (MIME words, quoted-printable, base64, HTML reduced
 *   to text by mailparser), cut to {@link EMAIL_BODY_MAX_CHARS} characters.
 *
 * A folder is found by its name as the server lists it, ignoring case, or by its last segment
 * (`Work` finds `INBOX.Work`), so the pre-route's folder hints work across servers' separators.
 */
import { simpleParser } from 'mailparser';
import type { ImapFlow } from 'imapflow';
import { z } from 'zod';
import type { Config } from '../../config/config-schema.js';
import { fillTemplate, type Messages } from '../../prompts/messages.js';
import { createImapSession, ImapSessionError, type ImapSession } from './imap-session.js';
import { defineOperation, type ToolDefinition } from './tool-operation.js';
import { dayCount, identifier, optional, required, text } from './tool-params.js';
import { cutText, ToolError, toolFailure, TRUNCATED_MARKER, type ToolResult } from './tool-result.js';

/** Messages one `email.search` returns (newest first): their headers fit the 2000-character payload. */
export const EMAIL_SEARCH_LIMIT = 10;
/** Matches whose arrival dates are read to pick the newest: the highest uids (the latest appended). */
const SEARCH_CANDIDATES = 200;
/** Body characters `email.read` returns: with the headers, the payload stays under the 2000-character cut. */
export const EMAIL_BODY_MAX_CHARS = 1_500;
/** Bytes of a message fetched for `email.read`: the text parts come first; attachments are not needed. */
const READ_SOURCE_MAX_BYTES = 1_000_000;
const DAY_MS = 24 * 60 * 60 * 1000;

/** Operation names that would send mail in any form. */
const SENDING = /^(send|reply|forward)/i;

/** Params of `email.search`. */
export const emailSearchParams = z.object({
  query: optional(text('a query', 200)).transform((query) => query ?? ''),
  days: optional(dayCount()).transform((days) => days ?? 7),
  folder: optional(text('a folder name', 200)),
});

/** Params of `email.read`; `folder` is the one the uid came from (search results carry it). */
export const emailReadParams = z.object({
  uid: required(identifier('a message uid')).pipe(z.string().regex(/^[1-9]\d{0,9}$/, 'expected a message uid (a number)')),
  folder: optional(text('a folder name', 200)),
});

/** One search hit as the model sees it. */
export interface EmailHit {
  uid: number;
  folder: string;
  from: string;
  subject: string;
  /** Arrival time, ISO 8601. */
  date: string;
}

/** The email tool with its connection, which the runtime closes when it stops. */
export interface EmailTools extends ToolDefinition {
  close(): Promise<void>;
}

export interface EmailToolOptions {
  /** Where `passwordEnv` is looked up; default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/** The email tool for `config.tools.email` (null = not configured). */
export function createEmailTools(email: Config['tools']['email'], messages: Messages, options: EmailToolOptions = {}): EmailTools {
  const env = options.env ?? process.env;
  const session: ImapSession | null =
    email === null
      ? null
      : createImapSession({
          url: email.url,
          user: email.user,
          rejectUnauthorized: email.rejectUnauthorized,
          password: () => {
            if (email.password !== undefined) return email.password;
            const value = email.passwordEnv === undefined ? undefined : env[email.passwordEnv];
            if (value === undefined || value === '') {
              throw new ToolError(
                'tool_failed',
                messages.tools.emailLoginFailed,
                `tools.email.passwordEnv: the variable ${email.passwordEnv ?? ''} is not set`,
              );
            }
            return value;
          },
        });
  const defaultFolder = email?.folder ?? 'INBOX';

  /** Runs `work` on the connection; connection failures become {@link ToolError}s with a sentence. */
  const withImap = async <T>(signal: AbortSignal, work: (client: ImapFlow) => Promise<T>): Promise<T> => {
    if (session === null) throw new ToolError('tool_not_configured', messages.tools.emailNotConfigured, 'not configured');
    try {
      return await session.use(signal, work);
    } catch (error) {
      if (error instanceof ToolError) throw error;
      if (error instanceof ImapSessionError) {
        const sentence = error.kind === 'login_refused' ? messages.tools.emailLoginFailed : messages.tools.emailUnreachable;
        throw new ToolError('tool_failed', sentence, `imap: ${error.message}`);
      }
      const e = error as { serverResponseCode?: unknown; responseStatus?: unknown };
      const code = typeof e?.serverResponseCode === 'string' ? ` ${e.serverResponseCode}` : '';
      const status = typeof e?.responseStatus === 'string' ? ` (${e.responseStatus}${code})` : '';
      throw new ToolError('tool_failed', messages.tools.failed, `imap: a command failed${status}`);
    }
  };

  /** The server's name for `wanted`, or a `not_found` failure naming the folders there are. */
  const findFolder = async (client: ImapFlow, wanted: string): Promise<string | ToolResult> => {
    if (wanted.toUpperCase() === 'INBOX') return 'INBOX';
    const boxes = (await client.list()).filter((box) => !box.flags.has('\\Noselect'));
    const lower = wanted.toLowerCase();
    const found =
      boxes.find((box) => box.path === wanted) ??
      boxes.find((box) => box.path.toLowerCase() === lower) ??
      boxes.find((box) => box.name.toLowerCase() === lower);
    if (found !== undefined) return found.path;
    const folders = boxes.map((box) => box.path).join(', ');
    return toolFailure('not_found', fillTemplate(messages.tools.emailFolderNotFound, { folder: wanted, folders }));
  };

  return {
    guard(operation) {
      if (SENDING.test(operation)) return toolFailure('email_send_refused', messages.tools.emailSendRefused);
      return email === null ? toolFailure('tool_not_configured', messages.tools.emailNotConfigured) : null;
    },
    operations: {
      search: defineOperation(emailSearchParams, ({ query, days, folder }, { signal, now }) =>
        withImap(signal, async (client): Promise<ToolResult> => {
          const path = await findFolder(client, folder ?? defaultFolder);
          if (typeof path !== 'string') return path;
          const windowStart = new Date(now.getTime() - days * DAY_MS);
          const lock = await client.getMailboxLock(path, { readOnly: true });
          let hits: EmailHit[];
          try {
            // SINCE is a calendar date on the server's clock: a day earlier is a superset of the window,
            // which the arrival times then cut exactly.
            const since = new Date(windowStart.getTime() - DAY_MS);
            const found = await client.search({ since, ...(query === '' ? {} : { text: query }) }, { uid: true });
            const uids = (found || []).sort((a, b) => a - b).slice(-SEARCH_CANDIDATES);
            hits = [];
            if (uids.length > 0) {
              for await (const message of client.fetch(uids, { uid: true, envelope: true, internalDate: true }, { uid: true })) {
                const arrived = message.internalDate instanceof Date ? message.internalDate : new Date(message.internalDate ?? 0);
                if (arrived.getTime() < windowStart.getTime()) continue;
                const sender = message.envelope?.from?.[0];
                hits.push({
                  uid: message.uid,
                  folder: path,
                  from: sender === undefined ? '' : sender.name ? `${sender.name} <${sender.address ?? ''}>` : (sender.address ?? ''),
                  subject: message.envelope?.subject ?? '',
                  date: arrived.toISOString(),
                });
              }
            }
          } finally {
            lock.release();
          }
          hits.sort((a, b) => (a.date === b.date ? b.uid - a.uid : a.date < b.date ? 1 : -1));
          const data = hits.slice(0, EMAIL_SEARCH_LIMIT);
          if (data.length === 0) {
            const sentence = query === '' ? messages.tools.emailNoneRecent : messages.tools.emailNone;
            return { ok: true, data, summary: fillTemplate(sentence, { query, days }) };
          }
          const lines = data.map((hit, index) => `${index + 1}. ${hit.date.slice(0, 16).replace('T', ' ')} — ${hit.from} — ${hit.subject}`);
          return { ok: true, data, summary: [fillTemplate(messages.tools.emailFound, { count: data.length }), ...lines].join('\n') };
        }),
      ),
      read: defineOperation(emailReadParams, ({ uid, folder }, { signal }) =>
        withImap(signal, async (client): Promise<ToolResult> => {
          const path = await findFolder(client, folder ?? defaultFolder);
          if (typeof path !== 'string') return path;
          const lock = await client.getMailboxLock(path, { readOnly: true });
          let source: Buffer | undefined;
          let arrived: Date | undefined;
          try {
            const message = await client.fetchOne(
              uid,
              { uid: true, internalDate: true, source: { maxLength: READ_SOURCE_MAX_BYTES } },
              { uid: true },
            );
            if (message) {
              source = message.source;
              arrived = message.internalDate instanceof Date ? message.internalDate : undefined;
            }
          } finally {
            lock.release();
          }
          if (source === undefined) return toolFailure('not_found', messages.tools.emailNotFound);
          const parsed = await simpleParser(source, { skipImageLinks: true, skipTextLinks: true });
          const whole = (parsed.text ?? '').replace(/\r\n/g, '\n').replace(/\n{3,}/g, '\n\n').trim();
          const truncated = whole.length > EMAIL_BODY_MAX_CHARS;
          const body = truncated ? `${cutText(whole, EMAIL_BODY_MAX_CHARS)}${TRUNCATED_MARKER}` : whole;
          const from = parsed.from?.text ?? '';
          const subject = parsed.subject ?? '';
          const date = (arrived ?? parsed.date)?.toISOString() ?? '';
          const summary = [subject, `${from}${date === '' ? '' : ` — ${date.slice(0, 16).replace('T', ' ')}`}`, body, ...(truncated ? [messages.tools.emailTruncated] : [])]
            .filter((line) => line !== '')
            .join('\n\n');
          return { ok: true, data: { uid: Number(uid), folder: path, from, subject, date, body, truncated }, summary };
        }),
      ),
    },
    close: async () => {
      await session?.close();
    },
  };
}
