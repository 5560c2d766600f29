// The application the demo puts behind the sidecar: plain HTTP on loopback, answering a line the
// handshake steps look for in what comes back through the sidecar.
import { createServer, type Server } from 'node:http';

export const APP_GREETING = 'hello from the app behind dc-operator';

export function startApp(): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`${APP_GREETING} (${req.method} ${req.url})\n`);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve({ server, port: typeof a === 'object' && a ? a.port : 0 });
    });
  });
}
