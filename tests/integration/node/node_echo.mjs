// node_echo.mjs URL - echo check with npm's ws (pinned in package.json and
// package-lock.json beside this file; `make test` installs it with npm ci),
// so it runs the same on Debian 12's Node 18, which has no global WebSocket,
// and on newer Node.  Sends text and binary (ArrayBuffer) messages one after
// another and compares each echo; prints "ok N" and exits 0, or prints the
// problem and exits 1.  With a second argument "deflate" the client offers
// permessage-deflate with every message compressed (threshold 0), and the
// "ok" line names the negotiated extension.
import WebSocket from "ws";

const url = process.argv[2];
const deflate = process.argv[3] === "deflate";
const timer = setTimeout(() => { console.log("timed out"); process.exit(1); }, 20000);

function bytes(n, seed) {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
    return b;
}
const cases = [
    "hello from node",
    "",
    "h\u00e9llo \u20ac \u{1F600}",
    "x".repeat(125),
    "y".repeat(126),
    "z".repeat(70000),
    bytes(0, 1).buffer,
    bytes(1, 2).buffer,
    bytes(126, 3).buffer,
    bytes(65536, 4).buffer,
    bytes(300000, 5).buffer,
];

function same(a, b) {
    if (typeof a === "string") return a === b;
    if (!(b instanceof ArrayBuffer)) return false;
    const x = new Uint8Array(a), y = new Uint8Array(b);
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
}
function describe(v) {
    return typeof v === "string" ? `text(${v.length})` :
        v instanceof ArrayBuffer ? `binary(${v.byteLength})` : String(v);
}

const ws = new WebSocket(url, deflate ? { perMessageDeflate: { threshold: 0 } }
                                      : { perMessageDeflate: false });
ws.binaryType = "arraybuffer";
let i = 0;
ws.onopen = () => ws.send(cases[0]);
ws.onmessage = (ev) => {
    if (!same(cases[i], ev.data)) {
        console.log(`case ${i}: sent ${describe(cases[i])}, got ${describe(ev.data)}`);
        process.exit(1);
    }
    i++;
    if (i < cases.length) {
        ws.send(cases[i]);
    } else {
        ws.close(1000, "done");
    }
};
ws.onerror = (ev) => { console.log(`error: ${ev.message || ev.type}`); process.exit(1); };
ws.onclose = (ev) => {
    clearTimeout(timer);
    if (i !== cases.length) {
        console.log(`closed early (${ev.code}) after ${i} cases`);
        process.exit(1);
    }
    console.log(`ok ${i} code ${ev.code} extensions "${ws.extensions}"`);
    process.exit(ev.code === 1000 ? 0 : 1);
};
