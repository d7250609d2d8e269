/**
 * The document tool over the store: `search` (top 5 by the store's ranking) and `read` (the body cut
 * to 2000 characters, enough to phrase an answer without flooding a small model's context).
 */
import { z } from 'zod';
import type { DocumentStore } from '../store/document-store.js';
import { fillTemplate, type Messages } from '../../prompts/messages.js';
import { defineOperation, type ToolDefinition } from './tool-operation.js';
import { identifier, required, text } from './tool-params.js';
import { cutText, toolFailure, TRUNCATED_MARKER } from './tool-result.js';

/** Results of one `document.search`. */
export const DOCUMENT_SEARCH_LIMIT = 5;
/** Body characters `document.read` returns. */
export const DOCUMENT_BODY_MAX_CHARS = 2_000;
/** Snippet characters per line of the search summary. */
const SUMMARY_SNIPPET_CHARS = 120;

/** The part of the store the document tool uses. */
export type DocumentReader = Pick<DocumentStore, 'searchDocuments' | 'readDocument'>;

/** Params of `document.search`. */
export const documentSearchParams = z.object({ query: required(text('a query', 500)) });
/** Params of `document.read`. */
export const documentReadParams = z.object({ id: required(identifier('a document id')) });

/** The document tool; `enabled: false` in the config refuses it as not configured. */
export function createDocumentTools(store: DocumentReader, enabled: boolean, messages: Messages): ToolDefinition {
  return {
    guard: () => (enabled ? null : toolFailure('tool_not_configured', messages.tools.documentsNotConfigured)),
    operations: {
      search: defineOperation(documentSearchParams, async ({ query }) => {
        const hits = await store.searchDocuments(query, DOCUMENT_SEARCH_LIMIT);
        const data = hits.map(({ id, title, snippet }) => ({ id, title, snippet }));
        if (data.length === 0) {
          return { ok: true, data, summary: fillTemplate(messages.tools.documentsNone, { query }), sources: [] };
        }
        const lines = data.map(({ title, snippet }, index) => {
          const short =
            snippet.length > SUMMARY_SNIPPET_CHARS ? `${cutText(snippet, SUMMARY_SNIPPET_CHARS)}…` : snippet;
          return short === '' ? `${index + 1}. ${title}` : `${index + 1}. ${title} — ${short}`;
        });
        return {
          ok: true,
          data,
          summary: [fillTemplate(messages.tools.documentsFound, { count: data.length }), ...lines].join('\n'),
          sources: data.map(({ id, title }) => ({ id, title })),
        };
      }),
      read: defineOperation(documentReadParams, async ({ id }) => {
        const document = await store.readDocument(id);
        if (document === null) return toolFailure('not_found', messages.tools.documentNotFound);
        const truncated = document.body.length > DOCUMENT_BODY_MAX_CHARS;
        const body = truncated
          ? `${cutText(document.body, DOCUMENT_BODY_MAX_CHARS)}${TRUNCATED_MARKER}`
          : document.body;
        const summary = [document.title, body, ...(truncated ? [messages.tools.documentTruncated] : [])].join('\n\n');
        return {
          ok: true,
          data: { id: document.id, title: document.title, path: document.path, body, truncated },
          summary,
          sources: [{ id: document.id, title: document.title }],
        };
      }),
    },
  };
}
