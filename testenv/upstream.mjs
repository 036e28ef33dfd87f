// A real upstream web app for tests and the demo: it answers every request with what it
// received, so the identity headers the gateway injects (and the ones it must strip) are
// visible. JSON for API callers, a small HTML page for browsers.
// PORT (0 = ephemeral); prints {"port": N} once listening.
// TLS_CERT/TLS_KEY (PEM files): serve HTTPS; TLS_CLIENT_CA: require a client certificate
// issued by that CA (mTLS), and report its subject as `client_cert`.
// A websocket upgrade is accepted: the app sends one text message with the `x-auth-user` it
// received, then answers each message it gets with `echo:<bytes received>`.
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import crypto from 'node:crypto';

const handler = (req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; if (body.length > 1 << 20) req.destroy(); });
  req.on('end', () => {
    // ?delay=<ms> (at most 10 s): answer late, as a slow app does.
    const delay = Math.min(Number(new URL(req.url, 'http://x').searchParams.get('delay') || 0), 10000);
    setTimeout(() => answer(req, res, body), delay);
  });
};
const answer = (req, res, body) => {
  const seen = { method: req.method, url: req.url, headers: req.headers, trailers: req.trailers, body };
  if (req.socket.getPeerCertificate) {
    const c = req.socket.getPeerCertificate();
    seen.client_cert = c && c.subject ? c.subject.CN : null;
  }
  if ((req.headers.accept || '').includes('text/html')) {
    const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
    const rows = Object.entries(req.headers)
      .map(([k, v]) => `<tr${k.startsWith('x-auth') ? ' class="id"' : ''}><th>${esc(k)}</th><td>${esc(v)}</td></tr>`)
      .join('');
    const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Upstream app</title>
<style>body{font:15px system-ui,sans-serif;margin:2rem;max-width:60rem}th{text-align:left;padding-right:1rem}
tr.id{background:#e6f4ea}td{word-break:break-all}</style></head><body>
<h1>Hello from the upstream app</h1><p>${esc(req.method)} ${esc(req.url)}. Headers this app received
(identity headers set by authgate are highlighted):</p><table>${rows}</table>
<p><a href="/_authgate/sign_out">Sign out</a></p></body></html>`;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  } else {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(seen));
  }
};
const server = process.env.TLS_CERT
  ? https.createServer({
    cert: fs.readFileSync(process.env.TLS_CERT),
    key: fs.readFileSync(process.env.TLS_KEY),
    ...(process.env.TLS_CLIENT_CA
      ? { ca: fs.readFileSync(process.env.TLS_CLIENT_CA), requestCert: true, rejectUnauthorized: true }
      : {}),
  }, handler)
  : http.createServer(handler);
const frame = (text) => {
  const data = Buffer.from(text);
  return Buffer.concat([Buffer.from([0x81, data.length]), data]);
};
server.on('upgrade', (req, socket) => {
  if ((req.headers.upgrade || '').toLowerCase() !== 'websocket') { socket.destroy(); return; }
  const accept = crypto.createHash('sha1')
    .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
    + `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
  socket.write(frame(`user:${req.headers['x-auth-user'] || ''}`));
  socket.on('data', (d) => socket.write(frame(`echo:${d.length}`)));
  socket.on('error', () => {});
});
server.keepAliveTimeout = 65000;
server.listen(Number(process.env.PORT ?? '0'), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
