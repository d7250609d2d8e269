/**
 * Documents for `document.search` / `document.read` and the ReAct `search` tool. Full-text search uses
 * the `simple` configuration (identical on PGlite and PostgreSQL, no stemming, Korean and English
 * alike). `simple` splits on spaces, and Korean attaches particles to words (회의록을, 회의록은), so
 * whole-word matching misses many Korean hits; a substring (ILIKE) pass fills those in.
 */
import { sql, type Kysely } from 'kysely';
import type { DatabaseSchema } from './schema.js';

/** A document to store; `id` is stable (the ingest script uses the relative path). */
export interface NewDocument {
  id: string;
  title: string;
  path?: string | null;
  body: string;
}

/** A stored document. */
export interface DocumentRecord {
  id: string;
  title: string;
  path: string | null;
  body: string;
  createdAt: Date;
  updatedAt: Date;
}

/** One search result, best first. */
export interface DocumentHit {
  id: string;
  title: string;
  path: string | null;
  /** A short plain-text excerpt around the match. */
  snippet: string;
  /** Higher is better; full-text hits always come before substring hits. */
  rank: number;
  /** `fulltext`: whole words matched; `substring`: found by the ILIKE pass. */
  match: 'fulltext' | 'substring';
}

/** Documents and their search. */
export interface DocumentStore {
  /** Inserts or replaces the document with this id. */
  upsertDocument(document: NewDocument): Promise<void>;
  /** Up to `limit` (default 5) documents matching `query`; empty for an empty query. */
  searchDocuments(query: string, limit?: number): Promise<DocumentHit[]>;
  /** The document, or null when unknown. */
  readDocument(id: string): Promise<DocumentRecord | null>;
}

/** Clock of {@link createDocumentStore}. */
export interface DocumentStoreOptions {
  now?: () => Date;
}

const HEADLINE_OPTIONS =
  'StartSel="", StopSel="", MaxWords=35, MinWords=15, MaxFragments=2, FragmentDelimiter=" … "';
const SNIPPET_BEFORE = 60;
const SNIPPET_AFTER = 160;

// Particles (조사) that end Korean words, longest first. Stripping one only widens an ILIKE match.
const PARTICLES = [
  ...['에서', '에게', '한테', '까지', '부터', '으로', '이랑', '하고', '께서'],
  ...['은', '는', '이', '가', '을', '를', '의', '에', '와', '과', '도', '로', '만', '랑'],
];
const HANGUL_END = /[\uac00-\ud7a3]$/;
const NON_ASCII = /[^\x00-\x7f]/;

/** Builds the document store over `db`. */
export function createDocumentStore(
  db: Kysely<DatabaseSchema>,
  options: DocumentStoreOptions = {},
): DocumentStore {
  const now = options.now ?? (() => new Date());

  async function fullText(query: string, limit: number): Promise<DocumentHit[]> {
    // websearch_to_tsquery never raises on user input (quotes, `-`, `or` are understood, the rest ignored).
    const tsquery = sql`websearch_to_tsquery('simple', ${query})`;
    const best = db
      .selectFrom('documents')
      .select(['id', sql<number>`ts_rank(tsv, ${tsquery})`.as('rank')])
      .where(sql<boolean>`tsv @@ ${tsquery}`)
      .orderBy('rank', 'desc')
      .orderBy('id')
      .limit(limit);
    // ts_headline re-parses the whole body: run it only for the rows that made the cut.
    const rows = await db
      .selectFrom(best.as('best'))
      .innerJoin('documents', 'documents.id', 'best.id')
      .select([
        'documents.id',
        'documents.title',
        'documents.path',
        'best.rank',
        sql<string>`ts_headline('simple', documents.body, ${tsquery}, ${HEADLINE_OPTIONS})`.as('snippet'),
      ])
      .orderBy('best.rank', 'desc')
      .orderBy('documents.id')
      .execute();
    return rows.map((row) => ({ ...row, snippet: tidy(row.snippet), match: 'fulltext' as const }));
  }

  async function substring(
    terms: readonly string[],
    exclude: readonly string[],
    limit: number,
  ): Promise<DocumentHit[]> {
    const patterns = terms.map((term) => `%${term.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    // Two points per term in the title, one per term in the body.
    const score = sql.join(
      patterns.map(
        (p) =>
          sql`(case when title ilike ${p} then 2 else 0 end + case when body ilike ${p} then 1 else 0 end)`,
      ),
      sql` + `,
    );
    let search = db
      .selectFrom('documents')
      .select(['id', 'title', 'path', 'body', sql<number>`${score}`.as('score')])
      .where((eb) => eb.or(patterns.flatMap((p) => [eb('title', 'ilike', p), eb('body', 'ilike', p)])));
    if (exclude.length > 0) search = search.where('id', 'not in', exclude);
    const rows = await search.orderBy('score', 'desc').orderBy('id').limit(limit).execute();
    return rows.map((row) => ({
      id: row.id,
      title: row.title,
      path: row.path,
      snippet: excerpt(row.body, terms),
      // int4 arithmetic; node-postgres and PGlite both return it as a number.
      rank: Number(row.score) / (3 * terms.length),
      match: 'substring' as const,
    }));
  }

  return {
    async upsertDocument(document) {
      const at = now();
      const path = document.path ?? null;
      await db
        .insertInto('documents')
        .values({
          id: document.id,
          title: document.title,
          path,
          body: document.body,
          created_at: at,
          updated_at: at,
        })
        .onConflict((oc) =>
          oc.column('id').doUpdateSet({ title: document.title, path, body: document.body, updated_at: at }),
        )
        .execute();
    },

    async searchDocuments(query, limit = 5) {
      const trimmed = query.trim();
      if (trimmed === '' || limit <= 0) return [];
      const hits = await fullText(trimmed, limit);
      if (hits.length >= limit) return hits;
      // Full-text hits found: only words `simple` tokenizes badly (Korean, other non-ASCII) may add
      // more — substring matching English words ("a", "in") would bring noise. None found: try all.
      const terms = searchTerms(trimmed).filter((term) => hits.length === 0 || NON_ASCII.test(term));
      if (terms.length === 0) return hits;
      const more = await substring(terms, hits.map((hit) => hit.id), limit - hits.length);
      return hits.concat(more);
    },

    async readDocument(id) {
      const row = await db
        .selectFrom('documents')
        // Not tsv: large, and of no use outside the database.
        .select(['id', 'title', 'path', 'body', 'created_at', 'updated_at'])
        .where('id', '=', id)
        .executeTakeFirst();
      if (row === undefined) return null;
      return {
        id: row.id,
        title: row.title,
        path: row.path,
        body: row.body,
        createdAt: row.created_at,
        updatedAt: row.updated_at,
      };
    },
  };
}

/** The words of a query for the substring pass: punctuation dropped, Korean particles stripped. */
export function searchTerms(query: string): string[] {
  const terms = new Set<string>();
  for (const raw of query.toLowerCase().split(/[\s\p{P}\p{S}]+/u)) {
    let term = raw;
    if (HANGUL_END.test(term)) {
      const particle = PARTICLES.find((p) => term.endsWith(p) && term.length - p.length >= 2);
      if (particle !== undefined) term = term.slice(0, -particle.length);
    }
    // One Latin letter matches nearly everything; one Hangul syllable is often a whole word.
    if (term.length >= 2 || (term.length === 1 && NON_ASCII.test(term))) terms.add(term);
  }
  return [...terms].slice(0, 8);
}

function excerpt(body: string, terms: readonly string[]): string {
  const lower = body.toLowerCase();
  const positions = terms.map((term) => lower.indexOf(term)).filter((index) => index >= 0);
  const at = positions.length > 0 ? Math.min(...positions) : 0;
  const start = Math.max(0, at - SNIPPET_BEFORE);
  const end = Math.min(body.length, at + SNIPPET_AFTER);
  return `${start > 0 ? '… ' : ''}${tidy(body.slice(start, end))}${end < body.length ? ' …' : ''}`;
}

function tidy(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
