// A real upstream web app for tests and the demo: it answers every request with what it
// received, so the identity headers the gateway injects (and the ones it must strip) are
// visible. JSON for API callers, a small HTML page for browsers.
// PORT (0 = ephemeral); prints {"port": N} once listening.
import http from 'node:http';

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; if (body.length > 1 << 20) req.destroy(); });
  req.on('end', () => {
    const seen = { method: req.method, url: req.url, headers: req.headers, body };
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
  });
});
server.keepAliveTimeout = 65000;
server.listen(Number(process.env.PORT ?? '0'), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
