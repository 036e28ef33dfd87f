// Verifies authgate's signed assertion the way an app would, with npm `jose`.
//
// The part between the snippet markers is the README's Node example, word for word (a test
// checks). Input on stdin: {"issuer": ..., "checks": [{"jwks": url, "token": ..., "audience":
// ...}]}; output: one {"ok": true, "claims": {...}} or {"ok": false, "error": "..."} per check.

// --- snippet: node ---
import { createRemoteJWKSet, jwtVerify } from 'jose'; // npm install jose

// The key set is fetched once and cached; an unknown kid fetches it again.
const keySets = new Map();
export async function verify(token, jwksUrl, issuer, audience) {
  if (!keySets.has(jwksUrl)) keySets.set(jwksUrl, createRemoteJWKSet(new URL(jwksUrl)));
  const { payload } = await jwtVerify(token, keySets.get(jwksUrl), {
    algorithms: ['ES256'], // pinned: never take the algorithm from the token
    issuer,                // the gateway's public_url
    audience,              // this app's name for itself (the route's assertion_audience)
    requiredClaims: ['exp', 'iat', 'sub'],
  });
  return payload;
}
// --- end snippet ---

let input = '';
for await (const chunk of process.stdin) input += chunk;
const req = JSON.parse(input);
const out = [];
for (const c of req.checks) {
  try {
    out.push({ ok: true, claims: await verify(c.token, c.jwks, req.issuer, c.audience) });
  } catch (e) {
    out.push({ ok: false, error: `${e.code ?? e.name}: ${e.message}` });
  }
}
process.stdout.write(JSON.stringify(out));
