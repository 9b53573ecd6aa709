// Runs inside the API server's namespace: listens on a unix socket (the filesystem is shared
// across network namespaces) and pipes every connection to host:port in this namespace. This is
// how the runner, started in the root namespace, reaches the lab's API server without any route
// or link in the root namespace.
//   node forward.js <socket> <host> <port>
import { existsSync, unlinkSync } from 'node:fs';
import { connect, createServer } from 'node:net';

const [socket, host, port] = process.argv.slice(2);
if (!socket || !host || !port) {
  console.error('usage: forward.js <socket> <host> <port>');
  process.exit(2);
}
if (existsSync(socket)) unlinkSync(socket);
const server = createServer((conn) => {
  const up = connect(Number(port), host);
  conn.pipe(up);
  up.pipe(conn);
  const close = () => {
    conn.destroy();
    up.destroy();
  };
  conn.on('error', close);
  up.on('error', close);
  conn.on('close', close);
  up.on('close', close);
});
server.listen(socket);
const stop = () => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
