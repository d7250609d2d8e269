import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../package-root.js';
import { sendJson } from './http-server.js';
import { refuseBody } from './refuse-body.js';

/** The web chat page's routes (`GET /` and its assets). */
export interface WebPage {
  /** Answers `req` when `path` is one of the page's files and returns true; false leaves it to the caller. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean;
}

/** Where `npm run build` (scripts/build-web.mjs) writes the page. */
export const WEB_DIST = join(PACKAGE_ROOT, 'dist', 'web');

/**
 * The files of the page by URL path: a fixed list, so no request path ever becomes a file path.
 * Asset names are not content-hashed, so each response is revalidated (`no-cache` + ETag) and a new
 * build is picked up at the next load.
 */
const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
};

/**
 * Everything the page needs comes from this origin; its script talks only to this origin's WebSocket
 * (`ws:`/`wss:` named because older engines do not count them as `'self'`). No inline script or style.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "connect-src 'self' ws: wss:",
  "img-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

interface LoadedFile {
  body: Buffer;
  type: string;
  etag: string;
}

/**
 * Serves the web chat page (DESIGN §5 `GET /`) from `dist/web/`, built by `npm run build` / `npm start`.
 * The page itself needs no token: it holds nothing private, and asks the user for the token its data
 * (the WebSocket) needs. The files are read once, at start (or, when the build was missing then, at the
 * first request that finds them all); while the build is missing every route answers 503 with a one-line
 * JSON body saying how to build it.
 */
export function createWebPage(options: { dir?: string } = {}): WebPage {
  const dir = options.dir ?? WEB_DIST;
  const load = (): Map<string, LoadedFile> | null => {
    try {
      const loaded = new Map<string, LoadedFile>();
      for (const [path, { file, type }] of Object.entries(FILES)) {
        const body = readFileSync(join(dir, file));
        loaded.set(path, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` });
      }
      return loaded;
    } catch {
      return null;
    }
  };
  // Read at start, so a later rebuild (which empties dist/ first) does not take the page away mid-run.
  let files = load();
  return {
    handle(req, res, path) {
      if (!Object.hasOwn(FILES, path)) return false;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('allow', 'GET, HEAD');
        sendJson(res, 405, { error: { type: 'method_not_allowed', message: `${req.method} is not allowed here; use GET` } });
        return true;
      }
      // Like every route that takes no body: a body is refused unread.
      if (refuseBody(req, res)) return true;
      files ??= load();
      const found = files?.get(path);
      if (found === undefined) {
        sendJson(res, 503, { error: { type: 'web_page_missing', message: 'the web page is not built; run npm run build (npm start does it)' } });
        return true;
      }
      const headers = {
        'content-type': found.type,
        'cache-control': 'no-cache',
        etag: found.etag,
        'x-content-type-options': 'nosniff',
        'content-security-policy': CONTENT_SECURITY_POLICY,
        'referrer-policy': 'no-referrer',
        'x-frame-options': 'DENY',
      };
      if (req.headers['if-none-match'] === found.etag) {
        res.writeHead(304, headers);
        res.end();
        return true;
      }
      res.writeHead(200, { ...headers, 'content-length': found.body.byteLength });
      res.end(req.method === 'HEAD' ? undefined : found.body);
      return true;
    },
  };
}
