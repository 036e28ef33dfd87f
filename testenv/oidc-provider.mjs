// A real OpenID provider (npm `oidc-provider`, OpenID-certified) shaped like Entra ID:
// the issuer is mounted at /<tenant id>/v2.0, ID tokens carry tid/oid/upn/groups/roles,
// and every claim goes into the ID token (conformIdTokenClaims: false), as Entra does.
//
// Like Entra, it is multi-tenant: one provider per tenant at /<tid>/v2.0 (the home tenant
// TENANT_ID and a second, "other" tenant), sharing one signing key, plus Entra's
// /organizations/v2.0 authority: a discovery document whose issuer is the literal
// `{tenantid}` template, a sign-in page that finds the user's home tenant from the user name
// (home realm discovery), a token endpoint that redeems codes of any tenant, and a JWKS whose
// keys carry the templated `issuer` member (all as in ENTRA.md §1–3).
//
// App-only tokens: the client-credentials grant with Entra's `scope=<resource>/.default`
// gives a JWT access token for that resource (aud), with tid/oid/azp/idtyp/roles claims.
// Delegated tokens: the authorization code flow with `resource=<resource>` and scope
// `<resource>/access_as_user` gives the client a JWT access token for that resource with the
// user's tid/oid/name/upn/groups/roles and `scp: access_as_user` (no idtyp), as Entra does.
//
// Microsoft Graph stand-in (no network reaches Microsoft), under /graph:
//   POST /graph/v1.0/users/{oid}/getMemberObjects  → {"value": [group ids]}
// It demands a valid app token for the Graph resource in the user's tenant, shaped after
// Graph's own errors otherwise. GRAPH_DOWN=1 answers 503 to everything.
//
// Configuration comes from the environment so the test harness and the demo can run it on
// an ephemeral port:
//   PORT (0 = ephemeral), TENANT_ID, CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS (comma list),
//   POST_LOGOUT_REDIRECT_URIS (comma list), BACKCHANNEL_LOGOUT_URI (the client's
//   back-channel logout URL; off when empty).
// For tests, POST /test/sign {"header": {...}, "claims": {...}} answers a JWT signed with
// the provider's key; GET /test/counts counts code redemptions, refresh grants (and refused ones);
// GET /test/sid?account=alice is the `sid` of the last ID token issued to her; and
// POST /test/users/<name> {"groups": [...], "disabled": true, ...} changes a user (a disabled
// user's refresh is refused with invalid_grant).
// Second factor and step-up, shaped like Entra's Conditional Access authentication contexts:
// a user with `otp` set has a second factor. The login form asks for it (after the password)
// when the authorization request wants one: `claims={"id_token":{"acrs":{"essential":true,
// "value":"c1"}}}` for a context whose policy (POLICIES) requires MFA, or `acr_values`
// naming MFA_ACR. A login that gives the code gets amr [pwd, mfa] and acr MFA_ACR; one that
// leaves it out, amr [pwd]. The ID token's `acrs` lists the contexts asked for that the
// login satisfied; as Entra does, a context no policy targets is listed anyway (the
// "silent c1": POST /test/policies {"c1": null} removes c1's policy). Every ID token carries
// auth_time. POST /test/ignore_max_age {"on": true} drops max_age from authorization
// requests (an IdP that signs the user in from its old session regardless).
// Once listening it prints one JSON line: {"issuer": "...", "port": N, "other_tenant": "..."}.
import http from 'node:http';
import crypto from 'node:crypto';
import Provider, { interactionPolicy } from 'oidc-provider';

const env = (name, fallback) => process.env[name] ?? fallback;
const TENANT_ID = env('TENANT_ID', '72f988bf-86f1-41af-91ab-2d7cd011db47');
const OTHER_TENANT_ID = 'f8cdef31-a31e-4b4a-93e4-5f571e91255a';
const list = (s) => (s || '').split(',').map((x) => x.trim()).filter(Boolean);

// Test users, each in one tenant. `sub` is pairwise-looking, `oid` is the stable object id.
const ADMINS = '6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1b1';
const STAFF = 'c3d2a8f1-3e48-4a0f-8d53-7d0a7b6b2f11';
const manyGroups = (n) => Array.from({ length: n }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
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
    groups: [ADMINS, STAFF],
    roles: ['Reader', 'Admin'],
    // Her second factor (the code the login form asks for when a step-up wants one).
    otp: '246810',
    // Entra's optional `login_hint` claim: an opaque value for the logout's logout_hint.
    login_hint: 'O.CiQ2ZTZhM2MwYy0xZDg3LTRkMzktOWI5YS05ZDU0YTBmMGExYjE',
  },
  // Assigned to no app role: `roles` is empty.
  bob: {
    sub: 'AAAAAAAAAAAAAAAAAAAAAOs1zhX3HMXmXo3vA5_8c5k',
    oid: '00000000-0000-0000-a1c4-7f3e2b1d9c55',
    tid: TENANT_ID,
    name: 'Bob Example',
    preferred_username: 'bob@contoso.example',
    upn: 'bob@contoso.example',
    email: 'bob@contoso.example',
    groups: [STAFF],
    roles: [],
  },
  // Her mail attribute is an unverified address: only the UPN may be trusted.
  carol: {
    sub: 'AAAAAAAAAAAAAAAAAAAAAC4r0lC4r0lC4r0lC4r0lC4',
    oid: '00000000-0000-0000-ca70-1ca701ca7011',
    tid: TENANT_ID,
    name: 'Carol Example',
    preferred_username: 'carol@contoso.example',
    upn: 'carol@contoso.example',
    email: 'carol@gmail.example',
    xms_edov: false,
    groups: [STAFF],
    roles: ['Reader'],
  },
  // Over 200 groups: the token carries the overage marker instead (ENTRA.md §9).
  olivia: {
    sub: 'AAAAAAAAAAAAAAAAAAAAA01iv1a01iv1a01iv1a01iv',
    oid: '00000000-0000-0000-0011-0e1a0e1a0e1a',
    tid: TENANT_ID,
    name: 'Olivia Overage',
    preferred_username: 'olivia@contoso.example',
    upn: 'olivia@contoso.example',
    email: 'olivia@contoso.example',
    xms_edov: true,
    _claim_names: { groups: 'src1' },
    _claim_sources: { src1: { endpoint: `https://graph.windows.net/${TENANT_ID}/users/00000000-0000-0000-0011-0e1a0e1a0e1a/getMemberObjects` } },
    roles: ['Reader'],
    graphGroups: [...manyGroups(229), ADMINS],
  },
  // In 20 groups (the memory benchmark's realistic member: Entra claims, 20 group IDs).
  many: {
    sub: 'AAAAAAAAAAAAAAAAAAAAAM4nyM4nyM4nyM4nyM4nyM4',
    oid: '00000000-0000-0000-0020-000000000020',
    tid: TENANT_ID,
    name: 'Many Groups',
    preferred_username: 'many@contoso.example',
    upn: 'many@contoso.example',
    email: 'many@contoso.example',
    xms_edov: true,
    groups: manyGroups(20),
    roles: ['Reader'],
  },
  // Another tenant; its admin set her mail to a victim's address (nOAuth).
  mallory: {
    sub: 'AAAAAAAAAAAAAAAAAAAAAM4ll0ry0utS1d3T3n4nt00',
    oid: '00000000-0000-0000-dead-beefdeadbeef',
    tid: OTHER_TENANT_ID,
    name: 'Mallory Outsider',
    preferred_username: 'mallory@fabrikam.example',
    upn: 'mallory@fabrikam.example',
    email: 'alice@contoso.example',
    groups: [],
    roles: ['Reader'],
  },
};
// Claims a test may give a user (POST /test/users/<name>) to see them as headers
// (`headers.claims`): a directory attribute, an Entra extension attribute, and shapes.
const TEST_CLAIMS = ['department', 'employee_number', 'is_manager', 'tags', 'address', 'bio',
  'motto', 'local_name', 'extension_0f1e2d3c4b5a69788796a5b4c3d2e1f0_costCenter', 'nested_list',
  'jobTitle', 'level'];
const tokenClaims = (u) => {
  const { graphGroups, otp, ...claims } = u;
  return claims;
};

// Conditional Access policies bound to authentication contexts: c1 requires MFA. A context
// with no policy is satisfied by any sign-in (Entra still lists it in acrs).
const POLICIES = { c1: 'mfa' };
const MFA_ACR = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';
const PWD_ACR = 'urn:authgate:test:password';
let ignoreMaxAge = false;
// The contexts a claims request asks for in the ID token.
const askedContexts = (claims) => {
  const r = claims?.id_token?.acrs;
  if (!r) return [];
  return (Array.isArray(r.values) ? r.values : [r.value]).filter((c) => typeof c === 'string');
};
// Whether an authorization request wants a second factor.
const wantsMfa = (params) => {
  let claims = {};
  try { claims = params.claims ? JSON.parse(params.claims) : {}; } catch { claims = {}; }
  const acr = String(params.acr_values || '').split(' ');
  return askedContexts(claims).some((c) => POLICIES[c] === 'mfa') || acr.includes(MFA_ACR);
};
// The contexts a token's login satisfied: asked for, and MFA done where its policy wants it.
const satisfiedContexts = (token) => askedContexts(token?.claims)
  .filter((c) => POLICIES[c] !== 'mfa' || (token.amr || []).includes('mfa'));

// An API a signed-in user's refresh token may be redeemed for (pass_access_token).
const REPORTS_API = 'api://authgate-reports';

// Apps calling APIs with their own identity (client credentials), and their app roles.
const DAEMONS = {
  daemon: { secret: 'daemon-secret', roles: ['Reports.Read'], ttl: 3600 },
  'daemon-norole': { secret: 'daemon-secret', roles: [], ttl: 3600 },
  'daemon-short': { secret: 'daemon-secret', roles: ['Reports.Read'], ttl: 2 },
};

const clientId = env('CLIENT_ID', 'authgate-demo');
// A client with no secret (CERT_CLIENT_JWKS: its public keys): it authenticates with a JWT
// signed by its key (private_key_jwt), as an Entra app with a certificate credential or a
// federated credential does. The same app to the Graph stand-in as the main client.
const certClientId = 'authgate-cert';
const certClientJwks = env('CERT_CLIENT_JWKS', '') ? JSON.parse(env('CERT_CLIENT_JWKS', '')) : null;
const servicePrincipalOid = (id) => `00000000-0000-0000-5e7c-${crypto.createHash('sha256').update(id).digest('hex').slice(0, 12)}`;
// One signing key for every tenant, as Entra's keys are shared; a fresh one every start (its
// kid changes too): a restarted provider exercises the gateway's refresh-on-unknown-kid path.
const SIGNING_KEY = rsaJwk();

function configuration(tid, graphResource) {
  return {
    clients: [{
      client_id: clientId,
      client_secret: env('CLIENT_SECRET', 'demo-client-secret'),
      redirect_uris: list(env('REDIRECT_URIS', 'http://127.0.0.1:8080/_authgate/callback/demo')),
      post_logout_redirect_uris: list(env('POST_LOGOUT_REDIRECT_URIS', '')),
      require_auth_time: true,
      // OpenID back-channel logout: where the provider POSTs logout tokens (with `sid`).
      ...(env('BACKCHANNEL_LOGOUT_URI', '') ? {
        backchannel_logout_uri: env('BACKCHANNEL_LOGOUT_URI', ''),
        backchannel_logout_session_required: true,
      } : {}),
      grant_types: ['authorization_code', 'client_credentials', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }, ...(certClientJwks ? [{
      client_id: certClientId,
      redirect_uris: list(env('REDIRECT_URIS', 'http://127.0.0.1:8080/_authgate/callback/demo')),
      post_logout_redirect_uris: list(env('POST_LOGOUT_REDIRECT_URIS', '')),
      grant_types: ['authorization_code', 'client_credentials', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: certClientJwks,
    }] : []), ...Object.entries(DAEMONS).map(([id, d]) => ({
      client_id: id,
      client_secret: d.secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
    }))],
    jwks: { keys: [SIGNING_KEY] },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username', 'tid', 'oid', 'upn', 'groups', 'roles', 'login_hint', '_claim_names', '_claim_sources', ...TEST_CLAIMS],
      email: ['email', 'email_verified', 'xms_edov'],
      acrs: null,
    },
    acrValues: [MFA_ACR, PWD_ACR],
    interactions: { policy: stepUpPolicy() },
    conformIdTokenClaims: false,
    // Every refresh returns a new refresh token and consumes the old one; using a consumed one
    // again revokes the whole grant (oidc-provider's reuse detection), as a race would.
    rotateRefreshToken: true,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      claimsParameter: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Entra's v2 client-credentials form: scope=<resource>/.default names the resource.
        async defaultResource(ctx) {
          const scope = String(ctx.oidc.params.scope || '');
          const dflt = scope.split(' ').find((s) => s.endsWith('/.default'));
          return dflt ? dflt.slice(0, -'/.default'.length) : undefined;
        },
        async getResourceServerInfo(ctx, resource, client) {
          // The reports API's delegated tokens live 20 s: a gateway passing them upstream
          // (pass_access_token) must fetch a fresh one before each expires.
          const ttl = resource === REPORTS_API ? 20 : (DAEMONS[client.clientId]?.ttl ?? 3600);
          return {
            // .default for apps (client credentials); access_as_user for a signed-in user's
            // delegated token (authorization code with resource=<resource>).
            scope: `${resource}/.default ${resource}/access_as_user`,
            audience: resource,
            accessTokenTTL: ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    async extraTokenClaims(ctx, token) {
      // A delegated token, as Entra's v2 access tokens for an API carry them: the user's
      // tid/oid/name/upn, the API's app roles assigned to them, groups, and `scp`.
      if (token.kind === 'AccessToken' && token.accountId && USERS[token.accountId]) {
        const u = USERS[token.accountId];
        const scp = String(token.scope || '').split(' ')
          .filter((s) => s.endsWith('/access_as_user'))
          .map((s) => s.slice(s.lastIndexOf('/') + 1))
          .join(' ');
        return {
          tid: u.tid, oid: u.oid, name: u.name, preferred_username: u.preferred_username,
          upn: u.upn, groups: u.groups, roles: u.roles, azp: token.clientId, ver: '2.0', scp,
          // Too many groups: the overage marker instead, as in her ID token.
          ...(u._claim_names ? { _claim_names: u._claim_names, _claim_sources: u._claim_sources } : {}),
        };
      }
      if (token.kind !== 'ClientCredentials') return undefined;
      const id = token.clientId;
      const roles = (id === clientId || id === certClientId)
        ? (token.aud === graphResource ? ['GroupMember.Read.All', 'User.Read.All'] : [])
        : DAEMONS[id]?.roles ?? [];
      return { tid, oid: servicePrincipalOid(id), azp: id, idtyp: 'app', ver: '2.0', roles };
    },
    // Its outgoing requests (back-channel logout tokens) go to a gateway on loopback, which
    // oidc-provider's guard against server-side request forgery refuses: not here.
    fetch: (url, { dispatcher, ...options }) => globalThis.fetch(url, options),
    cookies: {
      keys: [crypto.randomBytes(32).toString('hex')],
      // Cookies are per host, not per port: keep clear of the gateway's names.
      names: { session: `op_session_${tid.slice(0, 8)}`, interaction: `op_interaction_${tid.slice(0, 8)}`, resume: `op_resume_${tid.slice(0, 8)}` },
    },
    ttl: { AuthorizationCode: 60, IdToken: 3600, Interaction: 600, Session: 3600, Grant: 3600 },
    async findAccount(ctx, id, token) {
      const user = USERS[id];
      // A disabled user: every refresh then answers invalid_grant, as Entra does.
      if (!user || user.tid !== tid || user.disabled) return undefined;
      // `token`: the code or refresh token being redeemed (its claims request and the
      // login's amr): Entra's acrs for the contexts it satisfied.
      return {
        accountId: id,
        async claims() {
          const acrs = satisfiedContexts(token);
          return { ...tokenClaims(user), ...(acrs.length ? { acrs } : {}) };
        },
      };
    },
    // Skip the consent screen, as an admin-consented Entra app does.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      const asked = String(ctx.oidc.params.scope || '').split(' ');
      grant.addOIDCScope(`openid profile email${asked.includes('offline_access') ? ' offline_access' : ''}`);
      grant.addOIDCClaims(['tid', 'oid', 'upn', 'groups', 'roles', 'xms_edov', 'login_hint', '_claim_names', '_claim_sources', 'acrs', ...TEST_CLAIMS]);
      // A sign-in that names an API (resource=...) consents to its delegated scope.
      const resource = ctx.oidc.params.resource;
      if (typeof resource === 'string' && resource) grant.addResourceScope(resource, `${resource}/access_as_user`);
      // Entra's form, scope=<resource>/.default: consented too (a refresh token then redeems
      // for that API, as an Entra refresh token does for any consented one).
      for (const dflt of asked.filter((s) => s.endsWith('/.default'))) {
        const r = dflt.slice(0, -'/.default'.length);
        grant.addResourceScope(r, dflt);
      }
      await grant.save();
      return grant;
    },
    renderError(ctx, out) {
      ctx.type = 'text/plain';
      ctx.body = `${out.error}: ${out.error_description || ''}`;
    },
  };
}

// The login prompt also shows when the request wants a second factor the session has not
// had (a step-up), as Conditional Access prompts for MFA.
function stepUpPolicy() {
  const policy = interactionPolicy.base();
  policy.get('login').checks.add(new interactionPolicy.Check(
    'step_up', 'a second factor is required',
    // Not right after a login (`result`): one that left the second factor out goes on
    // without it, and the token then lacks what needs it.
    (ctx) => (wantsMfa(ctx.oidc.params) && !ctx.oidc.result?.login
      && !(ctx.oidc.session.amr || []).includes('mfa')
      ? interactionPolicy.Check.REQUEST_PROMPT : interactionPolicy.Check.NO_NEED_TO_PROMPT),
  ));
  return policy;
}

// The login form's submission, handled here for a login prompt: the password step, then the
// second-factor step when the request wants one and the user has a second factor.
async function submitLogin(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name !== 'login') return false;
  const form = new URLSearchParams((await readBody(req)).toString());
  const login = form.get('login') || '';
  const user = USERS[login];
  const otp = form.get('otp');
  if (user && user.otp && wantsMfa(details.params) && otp === null) {
    const hidden = ['prompt', 'login', 'password']
      .map((k) => `<input type="hidden" name="${k}" value="${String(form.get(k) || '').replace(/[^A-Za-z0-9@._-]/g, '')}">`).join('');
    send(res, 200, 'text/html', `<!doctype html><title>Verify your identity</title><form method="post" action="${req.originalUrl.split('?')[0]}">${hidden}<label>Code <input name="otp"></label><button>Verify</button></form>`);
    return true;
  }
  // An empty code: the user goes on without the second factor.
  if (otp && (!user || otp !== user.otp)) {
    send(res, 400, 'text/plain', 'AADSTS50074: wrong verification code');
    return true;
  }
  const mfa = Boolean(otp);
  await provider.interactionFinished(req, res, {
    login: { accountId: login, amr: mfa ? ['pwd', 'mfa'] : ['pwd'], acr: mfa ? MFA_ACR : PWD_ACR },
  }, { mergeWithLastSubmission: false });
  return true;
}

function rsaJwk() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: crypto.randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };
}
const PUBLIC_KEY = crypto.createPublicKey({ key: SIGNING_KEY, format: 'jwk' });

// A JWT this process signed, checked the way Graph checks its callers' tokens.
function verifyJwt(token) {
  const [h, p, s] = String(token || '').split('.');
  if (!s) return null;
  const ok = crypto.verify('RSA-SHA256', Buffer.from(`${h}.${p}`), PUBLIC_KEY, Buffer.from(s, 'base64url'));
  if (!ok) return null;
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  return claims.exp > Date.now() / 1000 ? claims : null;
}

const readBody = (req) => new Promise((resolve) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => resolve(Buffer.concat(chunks)));
});
const send = (res, status, type, body) => {
  res.writeHead(status, { 'content-type': type });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};
// Tests only: a JWT with the given header members and claims, signed with this provider's
// key (RS256, its kid), so a test can send what the provider could have sent, claim by claim.
async function testSign(req, res) {
  const { header = {}, claims = {} } = JSON.parse((await readBody(req)).toString() || '{}');
  const h = { alg: 'RS256', kid: SIGNING_KEY.kid, ...header };
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${part(h)}.${part(claims)}`;
  const key = crypto.createPrivateKey({ key: SIGNING_KEY, format: 'jwk' });
  const sig = crypto.sign('RSA-SHA256', Buffer.from(input), key).toString('base64url');
  return send(res, 200, 'application/jwt', `${input}.${sig}`);
}
// Tests only: what the provider did, and changes to its users.
const counts = { codes: 0, refresh: 0, refresh_errors: 0, client_assertions: 0, last_assertion_jti: null, client_errors: [] };
// A client assertion's jti (the token request that carried it).
function noteAssertion(ctx) {
  const a = ctx.oidc.params && ctx.oidc.params.client_assertion;
  if (!a) return;
  counts.client_assertions += 1;
  try {
    counts.last_assertion_jti = JSON.parse(Buffer.from(String(a).split('.')[1], 'base64url').toString()).jti;
  } catch { counts.last_assertion_jti = 'unreadable'; }
}
const lastSid = {};
function observe(provider) {
  provider.on('grant.success', (ctx) => {
    noteAssertion(ctx);
    if (ctx.oidc.params.grant_type === 'refresh_token') counts.refresh += 1;
    if (ctx.oidc.params.grant_type === 'authorization_code') counts.codes += 1;
    const idToken = ctx.body && ctx.body.id_token;
    if (idToken) {
      const claims = JSON.parse(Buffer.from(idToken.split('.')[1], 'base64url').toString());
      // The provider's `sub` is the account's key (alice, bob, ...).
      if (claims.sid) lastSid[claims.sub] = claims.sid;
    }
  });
  provider.on('grant.error', (ctx, err) => {
    noteAssertion(ctx);
    if (err && ctx.oidc.params && ctx.oidc.params.client_assertion) counts.client_errors.push(`${err.error}: ${err.error_description}`);
    if (ctx.oidc.params && ctx.oidc.params.grant_type === 'refresh_token') counts.refresh_errors += 1;
  });
}
async function testHooks(req, res, path, query) {
  if (path === '/test/counts') return send(res, 200, 'application/json', counts);
  if (path === '/test/policies' && req.method === 'POST') {
    for (const [c, p] of Object.entries(JSON.parse((await readBody(req)).toString() || '{}'))) {
      if (p === null) delete POLICIES[c]; else POLICIES[c] = p;
    }
    return send(res, 200, 'application/json', POLICIES);
  }
  if (path === '/test/ignore_max_age' && req.method === 'POST') {
    ignoreMaxAge = Boolean(JSON.parse((await readBody(req)).toString() || '{}').on);
    return send(res, 200, 'application/json', { ignoreMaxAge });
  }
  if (path === '/test/sid') {
    const account = new URLSearchParams(query).get('account');
    return send(res, 200, 'application/json', { sid: lastSid[account] || null });
  }
  const m = path.match(/^\/test\/users\/([a-z]+)$/);
  if (m && req.method === 'POST' && USERS[m[1]]) {
    Object.assign(USERS[m[1]], JSON.parse((await readBody(req)).toString() || '{}'));
    return send(res, 200, 'application/json', { ok: true });
  }
  return send(res, 404, 'text/plain', 'not found');
}
const graphError = (res, status, code, message) => send(res, status, 'application/json', { error: { code, message, innerError: { 'request-id': crypto.randomUUID() } } });

const server = http.createServer();
server.listen(Number(env('PORT', '0')), '127.0.0.1', () => {
  const { port } = server.address();
  const base = `http://127.0.0.1:${port}`;
  const graphResource = `${base}/graph`;
  const tenants = {};
  for (const tid of [TENANT_ID, OTHER_TENANT_ID]) {
    const provider = new Provider(`${base}/${tid}/v2.0`, configuration(tid, graphResource));
    provider.proxy = false;
    observe(provider);
    tenants[tid] = { handler: provider.callback(), provider };
  }
  const ORG = '/organizations/v2.0';

  async function organizations(req, res, path, query) {
    if (path === '/.well-known/openid-configuration') {
      const r = await fetch(`${base}/${TENANT_ID}/v2.0/.well-known/openid-configuration`);
      const doc = await r.json();
      const rewrite = (u) => u && u.replace(`/${TENANT_ID}/v2.0`, ORG);
      const out = {
        ...doc,
        issuer: `${base}/{tenantid}/v2.0`,
        authorization_endpoint: rewrite(doc.authorization_endpoint),
        token_endpoint: rewrite(doc.token_endpoint),
        jwks_uri: rewrite(doc.jwks_uri),
      };
      delete out.end_session_endpoint;
      delete out.registration_endpoint;
      return send(res, 200, 'application/json', out);
    }
    if (path === '/jwks') {
      const r = await fetch(`${base}/${TENANT_ID}/v2.0/jwks`);
      const { keys } = await r.json();
      return send(res, 200, 'application/json', { keys: keys.map((k) => ({ ...k, issuer: `${base}/{tenantid}/v2.0` })) });
    }
    if (path === '/auth' && req.method === 'GET') {
      // Home realm discovery: who are you? Then on to your tenant.
      return send(res, 200, 'text/html', `<!doctype html><title>Sign in</title><form method="post" action="${ORG}/hrd?${query}"><label>User <input name="login"></label><button>Next</button></form>`);
    }
    if (path === '/hrd' && req.method === 'POST') {
      const login = new URLSearchParams((await readBody(req)).toString()).get('login');
      const user = USERS[login];
      if (!user) return send(res, 400, 'text/plain', `AADSTS50034: The user account ${login} does not exist in any directory.`);
      // On to the user's tenant with the name typed as login_hint (replacing one sent).
      const params = new URLSearchParams(query);
      params.set('login_hint', login);
      res.writeHead(302, { location: `/${user.tid}/v2.0/auth?${params}` });
      return res.end();
    }
    if (path === '/token' && req.method === 'POST') {
      // A code of any tenant: ask each tenant until one knows it.
      const body = await readBody(req);
      let last;
      for (const tid of Object.keys(tenants)) {
        const r = await fetch(`${base}/${tid}/v2.0/token`, {
          method: 'POST',
          headers: { 'content-type': req.headers['content-type'] || '', authorization: req.headers.authorization || '' },
          body,
        });
        last = { status: r.status, text: await r.text() };
        if (!(r.status === 400 && last.text.includes('invalid_grant'))) break;
      }
      return send(res, last.status, 'application/json', last.text);
    }
    return send(res, 404, 'text/plain', 'not found');
  }

  async function graph(req, res, path) {
    if (env('GRAPH_DOWN', '') === '1') return graphError(res, 503, 'serviceNotAvailable', 'Service unavailable');
    const m = path.match(/^\/v1\.0\/users\/([0-9a-f-]{36})\/getMemberObjects$/);
    if (!m || req.method !== 'POST') return graphError(res, 400, 'BadRequest', 'Unsupported request');
    const auth = req.headers.authorization || '';
    const claims = verifyJwt(auth.replace(/^Bearer /, ''));
    if (!claims || claims.aud !== graphResource) {
      return graphError(res, 401, 'InvalidAuthenticationToken', 'Access token validation failure. Invalid audience.');
    }
    const user = Object.values(USERS).find((u) => u.oid === m[1] && u.tid === claims.tid);
    if (!user) return graphError(res, 404, 'Request_ResourceNotFound', `Resource '${m[1]}' does not exist or one of its queried reference-property objects are not present.`);
    const body = JSON.parse((await readBody(req)).toString() || '{}');
    if (typeof body.securityEnabledOnly !== 'boolean') return graphError(res, 400, 'Request_BadRequest', 'securityEnabledOnly is required');
    return send(res, 200, 'application/json', {
      '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#Collection(Edm.String)',
      value: user.graphGroups || user.groups || [],
    });
  }

  server.on('request', (req, res) => {
    const [path, query = ''] = req.url.split(/\?(.*)/s);
    const handle = async () => {
      for (const [tid, { handler, provider }] of Object.entries(tenants)) {
        const prefix = `/${tid}/v2.0`;
        if (path === prefix || path.startsWith(`${prefix}/`)) {
          // Entra issues a refresh token for offline_access without a consent prompt;
          // oidc-provider keeps to the letter of OpenID Connect and drops offline_access unless
          // prompt=consent is asked. Asked here, so the provider behaves as Entra does (the
          // consent page is then clicked through).
          const q = new URLSearchParams(query);
          if (ignoreMaxAge && path === `${prefix}/auth` && q.has('max_age')) {
            q.delete('max_age');
            req.url = `${path}?${q}`;
          }
          if (path === `${prefix}/auth` && (q.get('scope') || '').split(' ').includes('offline_access') && !q.has('prompt')) {
            req.url += '&prompt=consent';
          }
          req.originalUrl = req.url;
          req.url = req.url.slice(prefix.length) || '/';
          if (req.method === 'POST' && /^\/interaction\/[^/]+$/.test(path.slice(prefix.length))
            && await submitLogin(provider, req, res)) return undefined;
          return handler(req, res);
        }
      }
      if (path.startsWith(`${ORG}/`)) return organizations(req, res, path.slice(ORG.length), query);
      if (path.startsWith('/graph/')) return graph(req, res, path.slice('/graph'.length));
      if (path === '/test/sign' && req.method === 'POST') return testSign(req, res);
      if (path.startsWith('/test/')) return testHooks(req, res, path, query);
      return send(res, 404, 'text/plain', 'not found');
    };
    handle().catch((e) => send(res, 500, 'text/plain', String(e)));
  });
  process.stdout.write(`${JSON.stringify({ issuer: `${base}/${TENANT_ID}/v2.0`, port, other_tenant: OTHER_TENANT_ID })}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
