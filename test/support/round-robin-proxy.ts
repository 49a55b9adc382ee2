import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A reverse proxy on 127.0.0.1 that sends each request to the next backend in turn and
 * keeps the Host header, as a load balancer in front of several instances does. A test
 * may pin one request to a backend with `x-test-backend: <index>` (removed before it is
 * forwarded).
 */
export const PIN_HEADER = 'x-test-backend';

export interface RoundRobinProxy {
  readonly url: string;
  readonly served: number[];
  close(): Promise<void>;
}

export async function startRoundRobinProxy(port: number, backends: () => string[]): Promise<RoundRobinProxy> {
  const served: number[] = [];
  let next = 0;
  const server: Server = createServer((req, res) => {
    const targets = backends();
    const pinned = req.headers[PIN_HEADER];
    delete req.headers[PIN_HEADER];
    const index = typeof pinned === 'string' ? Number(pinned) % targets.length : next % targets.length;
    if (typeof pinned !== 'string') next += 1;
    served[index] = (served[index] ?? 0) + 1;
    const target = new URL(targets[index]!);
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (response) => {
      res.writeHead(response.statusCode ?? 502, response.headers);
      response.pipe(res);
    });
    upstream.on('error', () => { res.writeHead(502); res.end(); });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    served,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
