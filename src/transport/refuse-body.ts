import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from './http-server.js';

/**
 * Answers 413 (and closes the connection, so the body is never read) when a request to a route that takes
 * no body brings one; true when it did. The routes that take one read it with their own cap.
 */
export function refuseBody(req: IncomingMessage, res: ServerResponse): boolean {
  const length = Number(req.headers['content-length'] ?? 0);
  if (req.headers['transfer-encoding'] === undefined && !(length > 0)) return false;
  res.setHeader('connection', 'close');
  sendJson(res, 413, { error: { type: 'too_large', message: 'this route takes no request body' } });
  return true;
}
