import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';

/**
 * The floor under the OpenAI API's figures under load, in its own process like the gateway: a bare
 * HTTP relay (node:http in, undici to the model server with keep-alive, the body piped back) with no
 * auth, checks, jobs, actors or journal. Whatever load it cannot take on this machine, no gateway on
 * these libraries can. Prints its URL, then serves until killed. The model server is `RELAY_TARGET`.
 */
const target = process.env.RELAY_TARGET;
if (target === undefined) throw new Error('RELAY_TARGET (the model server base URL) is not set');
const dispatcher = new Agent({ connections: 2_000, keepAliveTimeout: 10_000 });

const server = createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (chunk: Buffer) => parts.push(chunk));
  req.on('end', () => {
    request(`${target}/chat/completions`, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json' }, body: Buffer.concat(parts) })
      .then(async (upstream) => {
        res.writeHead(upstream.statusCode, { 'content-type': 'text/event-stream' });
        for await (const chunk of upstream.body) res.write(chunk);
        res.end();
      })
      .catch(() => {
        res.writeHead(502).end();
      });
  });
});
server.keepAliveTimeout = 10_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
