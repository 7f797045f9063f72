'use strict';
// Node.js `ws` over https, the wss peer of bench/compare.sh (node-tls):
//   node echo_tls.js PORT CERT KEY
// One process; every message goes back unchanged.  TLS as Node's defaults
// (TLS 1.2-1.3, its own ticket keys, session cache on).
const fs = require('fs');
const https = require('https');
const { WebSocketServer } = require('ws');

const [port, cert, key] = [Number(process.argv[2]), process.argv[3], process.argv[4]];
if (!Number.isInteger(port) || !cert || !key) {
  console.error('usage: node echo_tls.js PORT CERT KEY');
  process.exit(2);
}
const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
server.listen({ host: '127.0.0.1', port, backlog: 4096 });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
