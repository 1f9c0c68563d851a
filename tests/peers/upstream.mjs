// upstream.mjs: a Scalekit look-alike OpenID Provider for ssobridge's tests.
//
// It runs a real `oidc-provider` (9.x) set up the way Scalekit behaves toward
// ssobridge: authorization requests are routed to a simulated enterprise
// connection, and the login completes with no forms.
//
// START
//   node upstream.mjs
//   env PORT              port to listen on, on 127.0.0.1 (default 0 = a free port)
//   env UPSTREAM_CLIENTS  required. JSON array of
//                         {client_id, client_secret, redirect_uris, ...any other client metadata}
//   env UPSTREAM_DEBUG    optional. "1" logs every HTTP request to stderr.
//   When it is ready it prints exactly one line to stdout:
//     READY {"issuer":"http://127.0.0.1:PORT","port":PORT}
//   Nothing else goes to stdout (logs go to stderr). It exits with code 0 on SIGTERM/SIGINT.
//   A bad configuration makes it exit with code 2 and a message on stderr.
//
// ISSUER  http://127.0.0.1:PORT (no trailing slash). Discovery is at
//   /.well-known/openid-configuration; endpoints are oidc-provider's defaults:
//   /auth, /token, /me (userinfo), /jwks, /session/end.
//
// SIMULATED DIRECTORY (domains match case-insensitively)
//   org_acme    connections conn_acme1                domain acme.test    default user alice@acme.test (Alice Anders)
//   org_globex  connections conn_globex1, conn_globex2 domain globex.test  default user bob@globex.test (Bob Brown)
//   (The first connection listed is the org's default connection.)
//
// AUTHORIZATION REQUEST (GET /auth; POST /auth is not enabled, oidc-provider 9 answers 404)
//   response_type=code only. Scopes: openid profile email. PKCE: S256 accepted when
//   sent, never required; "plain" (or a challenge with no method) is rejected.
//   Extra parameters: connection_id, organization_id, domain_hint, domain (and the
//   standard login_hint). Routing, as Scalekit does it, by precedence:
//     connection_id > organization_id > domain_hint (or domain) > domain of login_hint.
//   Errors are redirected to the client's redirect_uri with state and iss (RFC 9207):
//     unknown connection_id / organization_id  -> error=invalid_request + error_description
//     unknown domain_hint / domain / login_hint domain -> error=domain_not_found + error_description
//     no selector at all                        -> error=invalid_request + error_description
//     login_hint that is not an e-mail address (and no other selector) -> error=invalid_request
//   The login is headless: /auth redirects to /interaction/<uid>, which finishes the
//   interaction at once and redirects back to /auth/<uid>, which redirects to the
//   client with the code. The user logged in is the login_hint (lower-cased) when its
//   domain belongs to the routed org, else the org's default user.
//   No SSO: every GET /auth starts like a fresh browser (an existing _session cookie is
//   ignored and deleted), so each login gets a new session (new sid), and prompt=none
//   always ends in error=login_required.
//   Cookies (_interaction, _interaction_resume, _session, with .sig) carry state
//   across the hops of one login; the client must keep a cookie jar.
//
// TOKENS
//   Token endpoint auth: client_secret_basic or client_secret_post. No refresh tokens.
//   ID token (RS256, key generated at start, kid in the JWKS) and userinfo claims:
//     sub = "<connection_id>;<email>" e.g. "conn_acme1;alice@acme.test"
//     email, email_verified: true, name, given_name, family_name,
//     oid = organization id, sid = the upstream session id.
//   The ID token also carries amr = [connection_id], auth_time and nonce (when sent);
//   header {"alg":"RS256","kid":...} (no typ). Userinfo (/me) has the claims above
//   (not amr/auth_time). TTLs: code 60 s, access token 600 s, ID token 600 s.
//   Endpoint URLs always use 127.0.0.1:PORT whatever Host the request named.
//
// TEST HOOKS (plain HTTP, handled before the provider)
//   GET  /__test/requests  JSON array, one entry per request received at /auth:
//          {connection_id, organization_id, domain_hint, domain, login_hint,
//           code_challenge_method, nonce_present, state_present, scope, client_id,
//           redirect_uri, response_type, prompt}   (missing values are null)
//   POST /__test/reset     clears the request log, the tamper mode and any extra JWKS keys.
//   POST /__test/tamper    body {"mode": M}: rewrites the id_token of the NEXT successful
//                          token-endpoint response only, then goes back to normal. Modes:
//          bad_signature  same header and kid, signed with another random RSA key
//          alg_none       header {"alg":"none","typ":"JWT"}, empty signature
//          hs256          HS256 signed with the requesting client's secret (no kid)
//          expired        exp 10 minutes ago, iat 20 minutes ago, real key
//          future_iat     iat 10 minutes in the future (exp moved along), real key
//          wrong_audience aud "someone-else", real key
//          wrong_issuer   iss "http://evil.example", real key
//          wrong_nonce    nonce "not-the-nonce", real key
//          unknown_kid    valid claims signed with a NEW RSA key and a new kid; that key's
//                         public JWK is added to /jwks only once this token response has been
//                         produced, so a verifier with a cached JWKS must refetch it.
//                         The key stays in /jwks until /__test/reset.
//          claims         body {"mode":"claims","claims":{...}}: the given claims replace the
//                         token's (a null value removes one), signed with the real key: what
//                         a customer's IdP (through Scalekit) may assert about its own users
//          none           cancels a pending tamper mode
//        Answers {"ok":true,"mode":M}; 400 {"error":...} for an unknown mode.
//   POST /__test/sign      body = a JSON object of claims, signed as-is (nothing added)
//                          with RS256 and the provider's real key: header
//                          {"alg":"RS256","kid":<the JWKS kid>,"typ":"JWT"}.
//                          Answers {"jwt":"..."}. For IdP-initiated login tokens.
//   GET  /__test/config    {"issuer", "kid", "clients": [client_id, ...]} (diagnostics).

import * as http from 'node:http';
import * as crypto from 'node:crypto';

import Provider, { errors, interactionPolicy } from 'oidc-provider';
import * as jose from 'jose';

// oidc-provider prints notices with console.info (stdout). stdout is reserved for
// the READY line, so every console method goes to stderr.
for (const m of ['log', 'info', 'debug']) {
  console[m] = (...args) => console.error(...args);
}

function fail(msg) {
  process.stderr.write(`upstream.mjs: ${msg}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------
// Configuration from the environment

const PORT = process.env.PORT === undefined || process.env.PORT === '' ? 0 : Number(process.env.PORT);
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) fail(`invalid PORT ${process.env.PORT}`);

let CLIENTS;
try {
  CLIENTS = JSON.parse(process.env.UPSTREAM_CLIENTS ?? '');
} catch (e) {
  fail(`UPSTREAM_CLIENTS must be a JSON array: ${e.message}`);
}
if (!Array.isArray(CLIENTS) || CLIENTS.length === 0) fail('UPSTREAM_CLIENTS must be a non-empty JSON array');
for (const c of CLIENTS) {
  if (!c || typeof c.client_id !== 'string' || typeof c.client_secret !== 'string' || !Array.isArray(c.redirect_uris)) {
    fail('each UPSTREAM_CLIENTS entry needs client_id, client_secret (strings) and redirect_uris (array)');
  }
}
const DEBUG = process.env.UPSTREAM_DEBUG === '1';

// ---------------------------------------------------------------------------
// The simulated directory

const ORGS = [
  {
    id: 'org_acme',
    name: 'Acme',
    domains: ['acme.test'],
    connections: ['conn_acme1'],
    defaultUser: 'alice@acme.test',
  },
  {
    id: 'org_globex',
    name: 'Globex',
    domains: ['globex.test'],
    connections: ['conn_globex1', 'conn_globex2'],
    defaultUser: 'bob@globex.test',
  },
];

const USERS = {
  'alice@acme.test': { given_name: 'Alice', family_name: 'Anders' },
  'bob@globex.test': { given_name: 'Bob', family_name: 'Brown' },
};

const orgById = (id) => ORGS.find((o) => o.id === id);
const orgByConnection = (conn) => ORGS.find((o) => o.connections.includes(conn));
const orgByDomain = (domain) => ORGS.find((o) => o.domains.includes(domain.toLowerCase()));

function capitalize(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

function userProfile(email, org) {
  const known = USERS[email];
  const given_name = known?.given_name ?? capitalize(email.split('@')[0].split(/[._+-]/)[0]);
  const family_name = known?.family_name ?? org.name;
  return { given_name, family_name, name: `${given_name} ${family_name}` };
}

const present = (v) => typeof v === 'string' && v !== '';

// Routes an authorization request like Scalekit. Returns {org, connection, email}
// or throws an oidc-provider error (redirected to the client with state and iss).
function route(params) {
  const p = (name) => (present(params[name]) ? params[name] : undefined);
  const loginHint = p('login_hint');
  const hintDomain = loginHint?.includes('@') ? loginHint.slice(loginHint.lastIndexOf('@') + 1).toLowerCase() : undefined;

  let org;
  let connection;
  if (p('connection_id')) {
    connection = p('connection_id');
    org = orgByConnection(connection);
    if (!org) throw new errors.InvalidRequest(`connection ${connection} not found`);
  } else if (p('organization_id')) {
    org = orgById(p('organization_id'));
    if (!org) throw new errors.InvalidRequest(`organization ${p('organization_id')} not found`);
  } else if (p('domain_hint') || p('domain')) {
    const domain = p('domain_hint') ?? p('domain');
    org = orgByDomain(domain);
    if (!org) throw new errors.CustomOIDCProviderError('domain_not_found', `no organization found for domain ${domain}`);
  } else if (loginHint) {
    if (!hintDomain) throw new errors.InvalidRequest('login_hint must be an email address');
    org = orgByDomain(hintDomain);
    if (!org) throw new errors.CustomOIDCProviderError('domain_not_found', `no organization found for domain ${hintDomain}`);
  } else {
    throw new errors.InvalidRequest(
      'one of connection_id, organization_id, domain_hint or login_hint is required',
    );
  }
  connection ??= org.connections[0];
  const email = hintDomain && org.domains.includes(hintDomain) ? loginHint.toLowerCase() : org.defaultUser;
  return { org, connection, email };
}

const accountIdFor = ({ connection, email }) => `${connection};${email}`;

function parseAccountId(id) {
  const i = typeof id === 'string' ? id.indexOf(';') : -1;
  if (i < 1) return undefined;
  const connection = id.slice(0, i);
  const email = id.slice(i + 1);
  const org = orgByConnection(connection);
  if (!org || !email.includes('@')) return undefined;
  return { connection, email, org };
}

// ---------------------------------------------------------------------------
// Keys

const SIGNING_KID = `upstream-${crypto.randomBytes(6).toString('hex')}`;
const { privateKey: SIGNING_KEY } = await jose.generateKeyPair('RS256', { extractable: true });
const SIGNING_JWK = { ...(await jose.exportJWK(SIGNING_KEY)), kid: SIGNING_KID, alg: 'RS256', use: 'sig' };
// An unrelated key, for bad_signature.
const { privateKey: OTHER_KEY } = await jose.generateKeyPair('RS256');

// ---------------------------------------------------------------------------
// Test-hook state

let requestLog = [];
let tamperMode = null;
let tamperClaims = {};
let extraJwks = [];

const TAMPER_MODES = new Set([
  'bad_signature', 'alg_none', 'hs256', 'expired', 'future_iat',
  'wrong_audience', 'wrong_issuer', 'wrong_nonce', 'unknown_kid', 'claims',
]);

const b64json = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

function decodeJwt(jwt) {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString()),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString()),
  };
}

async function signCompact(header, payload, key) {
  return new jose.CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader(header)
    .sign(key);
}

async function tamper(mode, idToken, clientSecret) {
  const { header, payload } = decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  const lifetime = typeof payload.exp === 'number' && typeof payload.iat === 'number'
    ? payload.exp - payload.iat : 600;
  switch (mode) {
    case 'bad_signature':
      return signCompact(header, payload, OTHER_KEY);
    case 'alg_none':
      return `${b64json({ alg: 'none', typ: 'JWT' })}.${b64json(payload)}.`;
    case 'hs256':
      return signCompact({ alg: 'HS256', typ: 'JWT' }, payload, new TextEncoder().encode(clientSecret));
    case 'expired':
      return signCompact(header, { ...payload, iat: now - 1200, exp: now - 600 }, SIGNING_KEY);
    case 'future_iat':
      return signCompact(header, { ...payload, iat: now + 600, exp: now + 600 + lifetime }, SIGNING_KEY);
    case 'wrong_audience':
      return signCompact(header, { ...payload, aud: 'someone-else' }, SIGNING_KEY);
    case 'wrong_issuer':
      return signCompact(header, { ...payload, iss: 'http://evil.example' }, SIGNING_KEY);
    case 'wrong_nonce':
      return signCompact(header, { ...payload, nonce: 'not-the-nonce' }, SIGNING_KEY);
    case 'claims': {
      const replaced = { ...payload, ...tamperClaims };
      for (const [name, value] of Object.entries(tamperClaims)) if (value === null) delete replaced[name];
      return signCompact(header, replaced, SIGNING_KEY);
    }
    case 'unknown_kid': {
      const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true });
      const kid = `rotated-${crypto.randomBytes(6).toString('hex')}`;
      const jwt = await signCompact({ ...header, kid }, payload, privateKey);
      // Published only now, after the token was minted with it.
      extraJwks.push({ ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' });
      return jwt;
    }
    default:
      throw new Error(`unknown tamper mode ${mode}`);
  }
}

// ---------------------------------------------------------------------------
// Plain HTTP helpers

function sendJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(data),
    'cache-control': 'no-store',
  });
  res.end(data);
}

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 1024 * 1024) throw new Error('body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? {} : JSON.parse(text);
}

const nullable = (v) => (v === undefined || v === '' ? null : Array.isArray(v) ? v.join(' ') : String(v));

function recordAuthorizationRequest(params) {
  const get = (name) => nullable(params?.[name]);
  requestLog.push({
    connection_id: get('connection_id'),
    organization_id: get('organization_id'),
    domain_hint: get('domain_hint'),
    domain: get('domain'),
    login_hint: get('login_hint'),
    code_challenge_method: get('code_challenge_method'),
    nonce_present: get('nonce') !== null,
    state_present: get('state') !== null,
    scope: get('scope'),
    client_id: get('client_id'),
    redirect_uri: get('redirect_uri'),
    response_type: get('response_type'),
    prompt: get('prompt'),
    max_age: get('max_age'),
    acr_values: get('acr_values'),
  });
}

// ---------------------------------------------------------------------------
// Server first (to learn the port), then the provider.

let provider;
let providerCallback;

async function handleTestHook(req, res, url) {
  const route_ = `${req.method} ${url.pathname}`;
  switch (route_) {
    case 'GET /__test/requests':
      return sendJson(res, 200, requestLog);
    case 'POST /__test/reset':
      requestLog = [];
      tamperMode = null;
      extraJwks = [];
      return sendJson(res, 200, { ok: true });
    case 'POST /__test/tamper': {
      let body;
      try {
        body = await readJson(req);
      } catch (e) {
        return sendJson(res, 400, { error: `invalid JSON body: ${e.message}` });
      }
      const mode = body?.mode;
      if (mode === 'none' || mode === null) {
        tamperMode = null;
        return sendJson(res, 200, { ok: true, mode: null });
      }
      if (!TAMPER_MODES.has(mode)) {
        return sendJson(res, 400, { error: `unknown mode ${JSON.stringify(mode)}`, modes: [...TAMPER_MODES] });
      }
      if (mode === 'claims' && (typeof body.claims !== 'object' || body.claims === null || Array.isArray(body.claims))) {
        return sendJson(res, 400, { error: 'mode claims needs a "claims" object' });
      }
      tamperMode = mode;
      tamperClaims = mode === 'claims' ? body.claims : {};
      return sendJson(res, 200, { ok: true, mode });
    }
    case 'POST /__test/sign': {
      let claims;
      try {
        claims = await readJson(req);
      } catch (e) {
        return sendJson(res, 400, { error: `invalid JSON body: ${e.message}` });
      }
      if (!claims || typeof claims !== 'object' || Array.isArray(claims)) {
        return sendJson(res, 400, { error: 'body must be a JSON object of claims' });
      }
      const jwt = await signCompact({ alg: 'RS256', kid: SIGNING_KID, typ: 'JWT' }, claims, SIGNING_KEY);
      return sendJson(res, 200, { jwt });
    }
    case 'GET /__test/config':
      return sendJson(res, 200, {
        issuer: provider.issuer,
        kid: SIGNING_KID,
        clients: CLIENTS.map((c) => c.client_id),
      });
    default:
      return sendJson(res, 404, { error: `no test hook ${route_}` });
  }
}

// The headless "login page": finishes the interaction at once.
async function handleInteraction(req, res) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (e) {
    return sendJson(res, 400, { error: 'interaction not found', error_description: e.message });
  }
  const { prompt, params } = details;
  let result;
  if (prompt.name === 'login') {
    let routed;
    try {
      routed = route(params);
    } catch (e) {
      result = { error: e.error ?? 'invalid_request', error_description: e.error_description ?? e.message };
    }
    if (routed) {
      result = {
        login: {
          accountId: accountIdFor(routed),
          amr: [routed.connection],
          remember: false,
        },
      };
    }
  } else if (prompt.name === 'consent') {
    // Not reached with loadExistingGrant below, kept for robustness.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    result = { consent: { grantId: await grant.save() } };
  } else {
    result = { error: 'access_denied', error_description: `unsupported prompt ${prompt.name}` };
  }
  return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

// Scalekit routes every authorization request afresh. oidc-provider would reuse a
// browser session, and when the routed user differs from the session's it answers
// the resume step with an auto-submitting logout form (a JS-less client cannot
// follow it). So every new authorization request starts as a fresh browser would:
// on /auth (not on /auth/<uid>, the resume step) the session cookie is dropped from
// the request and deleted in the browser; the resume step then creates a new session.
const SESSION_COOKIE = /^_session(\.legacy)?(\.sig)?=/;
function dropSessionCookie(req, res) {
  const { cookie } = req.headers;
  if (!cookie) return;
  const all = cookie.split(';').map((c) => c.trim()).filter(Boolean);
  const kept = all.filter((c) => !SESSION_COOKIE.test(c));
  if (kept.length === all.length) return;
  if (kept.length) req.headers.cookie = kept.join('; ');
  else delete req.headers.cookie;
  // oidc-provider's cookie writer appends to (does not replace) these.
  res.setHeader('set-cookie', all.filter((c) => SESSION_COOKIE.test(c)).map((c) => {
    const name = c.slice(0, c.indexOf('='));
    return `${name}=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT; samesite=lax; httponly`;
  }));
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (DEBUG) process.stderr.write(`upstream: ${req.method} ${req.url}\n`);
  try {
    if (url.pathname.startsWith('/__test/')) {
      return await handleTestHook(req, res, url);
    }
    if (!providerCallback) {
      return sendJson(res, 503, { error: 'starting' });
    }
    // Endpoint URLs are built from the Host header: pin it to the issuer's so
    // discovery and redirects always name http://127.0.0.1:PORT.
    req.headers.host = ISSUER_HOST;
    if (url.pathname === '/auth') dropSessionCookie(req, res);
    if (req.method === 'GET' && /^\/interaction\/[^/]+$/.test(url.pathname)) {
      return await handleInteraction(req, res);
    }
    return providerCallback(req, res);
  } catch (e) {
    process.stderr.write(`upstream: error handling ${req.method} ${req.url}: ${e.stack}\n`);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: e.message });
    else res.destroy();
  }
});

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
});
const { port } = server.address();
const ISSUER = `http://127.0.0.1:${port}`;
const ISSUER_HOST = `127.0.0.1:${port}`;

const policy = interactionPolicy.base();
// Re-authenticate whenever the browser session belongs to another user or
// connection than the one this request routes to. (dropSessionCookie already makes
// every /auth session-less; this check keeps the routing honest regardless.)
policy.get('login').checks.push(new interactionPolicy.Check(
  'routed_account',
  'the request routes to another account than the session',
  'login_required',
  (ctx) => {
    let routed;
    try {
      routed = route(ctx.oidc.params);
    } catch {
      return interactionPolicy.Check.REQUEST_PROMPT;
    }
    return ctx.oidc.session.accountId === accountIdFor(routed)
      ? interactionPolicy.Check.NO_NEED_TO_PROMPT
      : interactionPolicy.Check.REQUEST_PROMPT;
  },
));

provider = new Provider(ISSUER, {
  clients: CLIENTS.map((c) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...c,
  })),
  jwks: { keys: [SIGNING_JWK] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  responseTypes: ['code'],
  scopes: ['openid', 'profile', 'email'],
  claims: {
    acr: null,
    auth_time: null,
    iss: null,
    sid: null,
    amr: null,
    openid: ['sub', 'oid', 'sid', 'amr', 'auth_time'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name'],
  },
  // Profile and email claims go into the ID token itself, as Scalekit does.
  conformIdTokenClaims: false,
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  enabledJWA: {
    idTokenSigningAlgValues: ['RS256'],
  },
  pkce: { required: () => false },
  extraParams: {
    // One validator does the routing for the whole request: it runs after the
    // client and redirect_uri checks, so its errors are redirected with state and iss.
    connection_id(ctx) {
      route(ctx.oidc.params);
    },
    organization_id: null,
    domain_hint: null,
    domain: null,
  },
  interactions: {
    policy,
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  // No consent screen: grant whatever OIDC scopes/claims the client asked for.
  async loadExistingGrant(ctx) {
    const { client, account } = ctx.oidc;
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(client.clientId);
    let grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
    if (!grant || grant.accountId !== account.accountId || grant.clientId !== client.clientId) {
      grant = new ctx.oidc.provider.Grant({ accountId: account.accountId, clientId: client.clientId });
    }
    grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
    const claims = [...ctx.oidc.requestParamClaims];
    if (claims.length) grant.addOIDCClaims(claims);
    await grant.save();
    return grant;
  },
  async findAccount(ctx, id) {
    const parsed = parseAccountId(id);
    if (!parsed) return undefined;
    const { email, org } = parsed;
    return {
      accountId: id,
      async claims() {
        let sid;
        const source = ctx?.oidc?.entities?.AuthorizationCode ?? ctx?.oidc?.entities?.AccessToken;
        if (source?.sessionUid && ctx.oidc.client) {
          const session = await ctx.oidc.provider.Session.findByUid(source.sessionUid);
          sid = session?.sidFor(ctx.oidc.client.clientId);
        }
        return {
          sub: id,
          email,
          email_verified: true,
          ...userProfile(email, org),
          oid: org.id,
          ...(sid ? { sid } : {}),
          // amr (= [connection]) comes from the login result, not from here.
        };
      },
    };
  },
  features: {
    devInteractions: { enabled: false },
    claimsParameter: { enabled: false },
    rpInitiatedLogout: { enabled: true },
    userinfo: { enabled: true },
  },
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
    IdToken: 600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  issueRefreshToken: async () => false,
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
});

provider.on('server_error', (ctx, err) => {
  process.stderr.write(`upstream: server_error ${ctx.method} ${ctx.path}: ${err.stack}\n`);
});

// Koa middleware in front of every provider route.
provider.use(async (ctx, next) => {
  const isAuth = ctx.path === '/auth';
  if (isAuth && ctx.method === 'GET') recordAuthorizationRequest(ctx.query);

  await next();

  if (ctx.path === '/token' && ctx.method === 'POST' && tamperMode
      && ctx.status === 200 && ctx.body && typeof ctx.body.id_token === 'string') {
    const mode = tamperMode;
    tamperMode = null;
    ctx.body = { ...ctx.body, id_token: await tamper(mode, ctx.body.id_token, ctx.oidc?.client?.clientSecret ?? '') };
    process.stderr.write(`upstream: tampered id_token (${mode})\n`);
  }

  if (ctx.path === '/jwks' && ctx.status === 200 && ctx.body && Array.isArray(ctx.body.keys) && extraJwks.length) {
    ctx.body = { ...ctx.body, keys: [...ctx.body.keys, ...extraJwks] };
  }
});

providerCallback = provider.callback();

process.stdout.write(`READY ${JSON.stringify({ issuer: ISSUER, port })}\n`);

function shutdown(signal) {
  process.stderr.write(`upstream: ${signal}, shutting down\n`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
