// A real OpenID provider (npm `oidc-provider`, OpenID-certified) shaped like Entra ID:
// the issuer is mounted at /<tenant id>/v2.0, ID tokens carry tid/oid/upn/groups/roles,
// and every claim goes into the ID token (conformIdTokenClaims: false), as Entra does.
//
// Configuration comes from the environment so the test harness and the demo can run it on
// an ephemeral port:
//   PORT (0 = ephemeral), TENANT_ID, CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS (comma list),
//   POST_LOGOUT_REDIRECT_URIS (comma list).
// Once listening it prints one JSON line: {"issuer": "...", "port": N}.
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const env = (name, fallback) => process.env[name] ?? fallback;
const TENANT_ID = env('TENANT_ID', '72f988bf-86f1-41af-91ab-2d7cd011db47');
const OTHER_TENANT_ID = 'f8cdef31-a31e-4b4a-93e4-5f571e91255a';
const list = (s) => (s || '').split(',').map((x) => x.trim()).filter(Boolean);

// Test users. `sub` is pairwise-looking, `oid` is the stable object id, as in Entra.
const USERS = {
  alice: {
    sub: 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ',
    oid: '00000000-0000-0000-66f3-3332eca7ea81',
    tid: TENANT_ID,
    name: 'Alice Example',
    preferred_username: 'alice@contoso.example',
    upn: 'alice@contoso.example',
    email: 'alice@contoso.example',
    xms_edov: true,
    groups: ['6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1b1', 'c3d2a8f1-3e48-4a0f-8d53-7d0a7b6b2f11'],
    roles: ['Reader', 'Admin'],
  },
  bob: {
    sub: 'AAAAAAAAAAAAAAAAAAAAAOs1zhX3HMXmXo3vA5_8c5k',
    oid: '00000000-0000-0000-a1c4-7f3e2b1d9c55',
    tid: TENANT_ID,
    name: 'Bob Example',
    preferred_username: 'bob@contoso.example',
    upn: 'bob@contoso.example',
    email: 'bob@contoso.example',
    groups: ['c3d2a8f1-3e48-4a0f-8d53-7d0a7b6b2f11'],
    roles: [],
  },
  mallory: {
    sub: 'AAAAAAAAAAAAAAAAAAAAAM4ll0ry0utS1d3T3n4nt00',
    oid: '00000000-0000-0000-dead-beefdeadbeef',
    tid: OTHER_TENANT_ID,
    name: 'Mallory Outsider',
    preferred_username: 'mallory@fabrikam.example',
    email: 'alice@contoso.example',
    groups: [],
    roles: [],
  },
};

const clientId = env('CLIENT_ID', 'authgate-demo');
const configuration = {
  clients: [{
    client_id: clientId,
    client_secret: env('CLIENT_SECRET', 'demo-client-secret'),
    redirect_uris: list(env('REDIRECT_URIS', 'http://127.0.0.1:8080/_authgate/callback/demo')),
    post_logout_redirect_uris: list(env('POST_LOGOUT_REDIRECT_URIS', '')),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  // A fresh RS256 key every start (its kid changes too): a restarted provider exercises
  // the gateway's refresh-on-unknown-kid path.
  jwks: { keys: [rsaJwk()] },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username', 'tid', 'oid', 'upn', 'groups', 'roles'],
    email: ['email', 'email_verified', 'xms_edov'],
  },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  cookies: {
    keys: [crypto.randomBytes(32).toString('hex')],
    // Cookies are per host, not per port: keep clear of the gateway's names.
    names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_resume' },
  },
  ttl: { AuthorizationCode: 60, IdToken: 3600, Interaction: 600, Session: 3600, Grant: 3600 },
  async findAccount(ctx, id) {
    const user = USERS[id];
    if (!user) return undefined;
    return { accountId: id, async claims() { return { ...user }; } };
  },
  // Skip the consent screen, as an admin-consented Entra app does.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile email');
    grant.addOIDCClaims(['tid', 'oid', 'upn', 'groups', 'roles', 'xms_edov']);
    await grant.save();
    return grant;
  },
  renderError(ctx, out) {
    ctx.type = 'text/plain';
    ctx.body = `${out.error}: ${out.error_description || ''}`;
  },
};

function rsaJwk() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: crypto.randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };
}

const server = http.createServer();
server.listen(Number(env('PORT', '0')), '127.0.0.1', () => {
  const { port } = server.address();
  const prefix = `/${TENANT_ID}/v2.0`;
  const issuer = `http://127.0.0.1:${port}${prefix}`;
  const provider = new Provider(issuer, configuration);
  provider.proxy = false;
  const handler = provider.callback();
  server.on('request', (req, res) => {
    if (req.url === prefix || req.url.startsWith(`${prefix}/`)) {
      req.originalUrl = req.url;
      req.url = req.url.slice(prefix.length) || '/';
      handler(req, res);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
