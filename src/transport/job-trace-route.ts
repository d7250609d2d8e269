import type { IncomingMessage, ServerResponse } from 'node:http';
import { toErrorInfo } from '../errors.js';
import type { Runtime } from '../runtime/runtime.js';

/** `/jobs/ID/trace`: an id of the characters job ids are made of (UUIDs), nothing that could be a path. */
const TRACE_PATH = /^\/jobs\/([A-Za-z0-9_-]{1,128})\/trace$/;

/**
 * `GET /jobs/:id/trace`: the flight recorder's timeline of one of the caller's jobs (DESIGN §5 addition,
 * docs/http.md). Another owner's job and an unknown one are the same 404. Answers true when the request
 * was this route's.
 */
export function handleJobTrace(req: IncomingMessage, res: ServerResponse, path: string, owner: string, runtime: Runtime): boolean {
  if (!path.startsWith('/jobs/')) return false;
  const match = TRACE_PATH.exec(path);
  if (match === null) return false;
  if (req.method !== 'GET') {
    res.setHeader('allow', 'GET');
    send(res, 405, { error: { type: 'method_not_allowed', message: 'only GET' } });
    return true;
  }
  const jobId = match[1]!;
  runtime.trace(jobId, owner).then(
    (body) => {
      if (body === null) send(res, 404, { error: { type: 'unknown_job', message: 'no such job' } });
      else send(res, 200, body);
    },
    (error: unknown) => {
      // Logged where it was caught (the runtime), with the job id.
      const { reason } = toErrorInfo(error);
      const status = reason === 'store_unavailable' ? 503 : 500;
      send(res, status, { error: { type: reason, message: status === 503 ? 'the store cannot be used now' : 'internal error' } });
    },
  );
  return true;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
