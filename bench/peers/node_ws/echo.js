'use strict';
// Node.js `ws` echo peer for bench/compare.sh: node echo.js PORT [DEFLATE]
// One process; every message goes back unchanged, with the same binary flag.
// DEFLATE (bench/deflate_compare.py): "takeover" or "notakeover" accepts
// permessage-deflate, every message compressed (threshold 0), context
// takeover allowed or refused both ways.
// Listens on 127.0.0.1:PORT, any path (the bench uses /websocket).
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error('usage: node echo.js PORT');
  process.exit(2);
}

const mode = process.argv[3];
const perMessageDeflate = mode === 'takeover' || mode === 'notakeover'
  ? { threshold: 0, serverNoContextTakeover: mode === 'notakeover',
      clientNoContextTakeover: mode === 'notakeover' }
  : false;
const wss = new WebSocketServer({ host: '127.0.0.1', port, backlog: 4096, perMessageDeflate });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('error', (err) => {
  console.error('echo.js:', err.message);
  process.exit(1);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
