'use strict';
// Node.js `ws` echo peer for bench/compare.sh: node echo.js PORT
// One process; every message goes back unchanged, with the same binary flag.
// Listens on 127.0.0.1:PORT, any path (the bench uses /websocket).
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error('usage: node echo.js PORT');
  process.exit(2);
}

const wss = new WebSocketServer({ host: '127.0.0.1', port, backlog: 4096, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('error', (err) => {
  console.error('echo.js:', err.message);
  process.exit(1);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
