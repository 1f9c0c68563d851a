// upstream.mjs: a Scalekit look-alike OpenID Provider for ssobridge's tests.
//
// It runs a real `oidc-provider` (9.x) set up to answer as Scalekit's documented
// contract says (research/scalekit.md; the demo's simulator, src/demo/simulator.rs,
// follows the same contract): authorization requests are routed to a simulated
// enterprise connection, and the login completes with no forms.
//
// START
//   node upstream.mjs
//   env PORT              port to listen on, on 127.0.0.1 (default 0 = a free port)
//   env UPSTREAM_CLIENTS  required. JSON array of
//                         {client_id, client_secret, redirect_uris, ...any other client metadata}
//   env UPSTREAM_ISS_ON_REDIRECT  optional. "1" keeps RFC 9207 `iss` on authorization
//                         responses and `authorization_response_iss_parameter_supported` in
//                         discovery (Scalekit documents neither; both are off by default).
//   env UPSTREAM_DEBUG    optional. "1" logs every HTTP request to stderr.
//   When it is ready it prints exactly one line to stdout:
//     READY {"issuer":"http://127.0.0.1:PORT","port":PORT}
//   Nothing else goes to stdout (logs go to stderr). It exits with code 0 on SIGTERM/SIGINT.
//   A bad configuration makes it exit with code 2 and a message on stderr.
//
// ISSUER  http://127.0.0.1:PORT (no trailing slash). Discovery is at
//   /.well-known/openid-configuration; endpoints are Scalekit's paths:
//   /oauth/authorize, /oauth/token, /keys, /oidc/logout, and /me (userinfo, which
//   Scalekit does not document for Modular SSO; the broker does not use it).
//
// SIMULATED DIRECTORY (domains match case-insensitively)
//   org_acme    connections conn_acme1                domain acme.test    default user alice@acme.test (Alice Anders)
//   org_globex  connections conn_globex1, conn_globex2 domain globex.test  default user bob@globex.test (Bob Brown)
//   (The first connection listed is the org's default connection.)
//   carol@acme.test is a SAML-style user: her IdP sends given_name Carol and family_name
//   Chen only, no name and no email_verified (both optional at Scalekit). Any other
//   address at an org's domain signs in with a name made from it and email_verified true.
//
// AUTHORIZATION REQUEST (GET /oauth/authorize; POST is not enabled, oidc-provider 9 answers 404)
//   response_type=code only. Scopes: openid profile email. PKCE: S256 accepted when
//   sent, never required; "plain" (or a challenge with no method) is rejected.
//   Extra parameters: connection_id, organization_id, domain_hint, domain (and the
//   standard login_hint). Routing, as Scalekit does it, by precedence:
//     connection_id > organization_id > domain_hint (or domain) > domain of login_hint.
//   Errors are redirected to the client's redirect_uri with error, error_description
//   (Scalekit's documented texts) and state, and no iss (see UPSTREAM_ISS_ON_REDIRECT):
//     unknown connection_id                      -> invalid_connection_id
//     unknown organization_id                    -> invalid_organization_id
//     unknown domain_hint / domain / login_hint domain -> domain_not_found
//     no selector at all                         -> invalid_connection_selector
//     login_hint that is not an e-mail address (and no other selector) -> invalid_request
//     any other Scalekit code                    -> POST /__test/fail (below)
//   The login is headless: /oauth/authorize redirects to /interaction/<uid>, which
//   finishes the interaction at once and redirects back to /oauth/authorize/<uid>, which
//   redirects to the client with the code. The user logged in is the login_hint
//   (lower-cased) when its domain belongs to the routed org, else the org's default user.
//   No SSO: every GET /oauth/authorize starts like a fresh browser (an existing _session
//   cookie is ignored and deleted), so each login gets a new session (new sid), and
//   prompt=none always ends in error=login_required.
//   Cookies (_interaction, _interaction_resume, _session, with .sig) carry state
//   across the hops of one login; the client must keep a cookie jar.
//
// TOKENS
//   Token endpoint auth: client_secret_basic or client_secret_post (Scalekit's SDKs use
//   post). No refresh tokens.
//   ID token, as Scalekit's (docs:guides/idtoken-claims, docs:sso/quickstart): header
//   {"alg":"RS256","kid":"snk_<digits>","typ":"JWT"}, the kid in /keys; claims
//     iss, aud = [client_id] (an array), azp = client_id, client_id,
//     sub = "<connection_id>;<opaque IdP user id>", the id being "00u" + the first 17 hex
//           digits of SHA-256(lower-cased email), e.g. conn_acme1;00u… (never the email),
//     oid = organization id, amr = [connection_id], sid = "ses_<digits>",
//     at_hash, c_hash (left half of SHA-256, base64url), iat, exp,
//     email, email_verified (optional), name (optional), given_name, family_name,
//     nonce (when sent; Scalekit does not document echoing it). No auth_time.
//   Userinfo (/me) has the user claims and the same sub (not amr). TTLs: code 60 s,
//   access token 600 s, ID token 600 s.
//   Endpoint URLs always use 127.0.0.1:PORT whatever Host the request named.
//
// TEST HOOKS (plain HTTP, handled before the provider)
//   GET  /__test/requests  JSON array, one entry per request received at /oauth/authorize:
//          {connection_id, organization_id, domain_hint, domain, login_hint,
//           code_challenge_method, nonce_present, state_present, scope, client_id,
//           redirect_uri, response_type, prompt}   (missing values are null)
//   POST /__test/reset     clears the request log, the tamper mode, a pending failure and
//                          any extra JWKS keys.
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
//                         public JWK is added to /keys only once this token response has been
//                         produced, so a verifier with a cached JWKS must refetch it.
//                         The key stays in /keys until /__test/reset.
//          claims         body {"mode":"claims","claims":{...}}: the given claims replace the
//                         token's (a null value removes one), signed with the real key: what
//                         a customer's IdP (through Scalekit) may assert about its own users
//          none           cancels a pending tamper mode
//        Answers {"ok":true,"mode":M}; 400 {"error":...} for an unknown mode.
//   POST /__test/fail      body {"error": CODE, "error_description"?: TEXT, "state"?: false}:
//                          the NEXT GET /oauth/authorize whose client and redirect_uri are
//                          valid fails with CODE (any of Scalekit's codes, e.g.
//                          user_not_active, connection_not_active, no_active_connections,
//                          no_configured_connections, invalid_user_domain), with TEXT or
//                          Scalekit's documented description; "state": false leaves state
//                          out of that error response. Answers {"ok":true}.
//   POST /__test/sign      body = a JSON object of claims, signed as-is (nothing added)
//                          with RS256 and the provider's real key: header
//                          {"alg":"RS256","kid":<the JWKS kid>,"typ":"JWT"}.
//                          Answers {"jwt":"..."}.
//   POST /__test/idp_initiated  body {organization_id, connection_id, login_hint,
//                          relay_state?}: an idp_initiated_login token as the docs show it
//                          (docs:sso/guides/idp-init-sso): those claims plus exp (iat + 300),
//                          nbf, iat, iss; no aud, no jti; signed like /__test/sign.
//                          Answers {"jwt":"..."}.
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
const ISS_ON_REDIRECT = process.env.UPSTREAM_ISS_ON_REDIRECT === '1';

// Scalekit's endpoint paths.
const AUTHORIZE_PATH = '/oauth/authorize';
const TOKEN_PATH = '/oauth/token';
const KEYS_PATH = '/keys';

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

// What each IdP says about its known users; `saml: true` sends only given_name and
// family_name (no name, no email_verified: both are optional at Scalekit).
const USERS = {
  'alice@acme.test': { given_name: 'Alice', family_name: 'Anders' },
  'bob@globex.test': { given_name: 'Bob', family_name: 'Brown' },
  'carol@acme.test': { given_name: 'Carol', family_name: 'Chen', saml: true },
};

// Scalekit's documented descriptions of its authorization errors
// (docs:sso/reference/sso-integration-errors).
const SCALEKIT_ERRORS = {
  invalid_redirect_uri: 'Redirect URI is not part of the pre-approved list of redirect URIs',
  invalid_connection_selector: 'Missing organization_id (or) connection_id (or) domain (or) provider in the authorization URL',
  no_active_connections: 'There are no active SSO connections configured to process the single sign-on request',
  connection_not_active: 'The configured connection is not active',
  no_configured_connections: 'No active SSO connections configured',
  invalid_organization_id: 'Invalid organization ID',
  invalid_connection_id: 'Invalid connection ID',
  domain_not_found: 'No domain specified for the SSO connection(s)',
  invalid_user_domain: "User's domain not allowed for this SSO connection",
  invalid_client: 'The client application is not recognized or not configured correctly',
  application_not_active: 'The application is inactive',
  invalid_request: 'The authorization request contains invalid or missing parameters',
  unauthorized: 'The request is unauthorized',
  user_not_active: 'The user account is inactive',
  server_error: 'The server could not complete the request',
  mandatory_attribute_missing: 'Missing mandatory user attributes',
  authentication_not_completed: 'The authentication flow was not completed',
  user_login_required: 'User login is required to continue',
};

const scalekitError = (code, description) =>
  new errors.CustomOIDCProviderError(code, description ?? SCALEKIT_ERRORS[code] ?? code);

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
  if (known?.saml) return { given_name, family_name };
  return { given_name, family_name, name: `${given_name} ${family_name}`, email_verified: true };
}

// The IdP's own user id: opaque and stable, never the email (Scalekit's sub is
// "<connection_id>;<IdP user id>"). Okta-like: "00u" + 17 characters.
const idpUserId = (email) => `00u${crypto.createHash('sha256').update(email.toLowerCase()).digest('hex').slice(0, 17)}`;
// IdP user id -> email, for the accounts that signed in (one process serves one test).
const emailsByUserId = new Map();

const present = (v) => typeof v === 'string' && v !== '';

// Routes an authorization request like Scalekit. Returns {org, connection, email}
// or throws an oidc-provider error with Scalekit's code (redirected to the client).
function route(params) {
  const p = (name) => (present(params[name]) ? params[name] : undefined);
  const loginHint = p('login_hint');
  const hintDomain = loginHint?.includes('@') ? loginHint.slice(loginHint.lastIndexOf('@') + 1).toLowerCase() : undefined;

  let org;
  let connection;
  if (p('connection_id')) {
    connection = p('connection_id');
    org = orgByConnection(connection);
    if (!org) throw scalekitError('invalid_connection_id');
  } else if (p('organization_id')) {
    org = orgById(p('organization_id'));
    if (!org) throw scalekitError('invalid_organization_id');
  } else if (p('domain_hint') || p('domain')) {
    const domain = p('domain_hint') ?? p('domain');
    org = orgByDomain(domain);
    if (!org) throw scalekitError('domain_not_found');
  } else if (loginHint) {
    if (!hintDomain) throw scalekitError('invalid_request', 'login_hint must be an email address');
    org = orgByDomain(hintDomain);
    if (!org) throw scalekitError('domain_not_found');
  } else {
    throw scalekitError('invalid_connection_selector');
  }
  connection ??= org.connections[0];
  const email = hintDomain && org.domains.includes(hintDomain) ? loginHint.toLowerCase() : org.defaultUser;
  return { org, connection, email };
}

// The account id is the sub: "<connection_id>;<IdP user id>".
function accountIdFor({ connection, email }) {
  const userId = idpUserId(email);
  emailsByUserId.set(userId, email);
  return `${connection};${userId}`;
}

function parseAccountId(id) {
  // Split on the first ';' only: the IdP part is opaque.
  const i = typeof id === 'string' ? id.indexOf(';') : -1;
  if (i < 1) return undefined;
  const connection = id.slice(0, i);
  const email = emailsByUserId.get(id.slice(i + 1));
  const org = orgByConnection(connection);
  if (!org || !email) return undefined;
  return { connection, email, org };
}

// Scalekit's session ids are "ses_" + digits; this one is stable per provider session.
const scalekitSid = (sid) => `ses_${BigInt(`0x${crypto.createHash('sha256').update(sid).digest('hex').slice(0, 14)}`)}`;

// ---------------------------------------------------------------------------
// Keys

const randomDigits = (n) => Array.from(crypto.randomBytes(n), (b, i) => (i === 0 ? 1 + (b % 9) : b % 10)).join('');
// Scalekit's kids are "snk_" + digits.
const SIGNING_KID = `snk_${randomDigits(17)}`;
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
// POST /__test/fail: the next authorization request fails with this.
let pendingFailure = null;
let omitStateOnce = false;

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

// OIDC Core §3.3.2.11 / §3.1.3.6: base64url of the left half of SHA-256 (RS256).
const halfHash = (value) => crypto.createHash('sha256').update(value).digest().subarray(0, 16).toString('base64url');

// oidc-provider's ID token re-signed in Scalekit's shape: aud an array, azp and client_id,
// at_hash and c_hash of this response, no auth_time or acr, typ JWT in the header.
async function scalekitIdToken(idToken, clientId, accessToken, code) {
  const { payload } = decodeJwt(idToken);
  const claims = { ...payload, aud: [clientId], azp: clientId, client_id: clientId };
  delete claims.auth_time;
  delete claims.acr;
  if (typeof accessToken === 'string') claims.at_hash = halfHash(accessToken);
  else delete claims.at_hash;
  if (typeof code === 'string') claims.c_hash = halfHash(code);
  return signCompact({ alg: 'RS256', kid: SIGNING_KID, typ: 'JWT' }, claims, SIGNING_KEY);
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
      const kid = `snk_${randomDigits(17)}`;
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
      pendingFailure = null;
      omitStateOnce = false;
      return sendJson(res, 200, { ok: true });
    case 'POST /__test/fail': {
      let body;
      try {
        body = await readJson(req);
      } catch (e) {
        return sendJson(res, 400, { error: `invalid JSON body: ${e.message}` });
      }
      if (typeof body?.error !== 'string' || !/^[a-z_]+$/.test(body.error)) {
        return sendJson(res, 400, { error: 'body needs "error": a code such as user_not_active' });
      }
      pendingFailure = {
        error: body.error,
        description: typeof body.error_description === 'string' ? body.error_description : undefined,
        omitState: body.state === false,
      };
      return sendJson(res, 200, { ok: true });
    }
    case 'POST /__test/idp_initiated': {
      let body;
      try {
        body = await readJson(req);
      } catch (e) {
        return sendJson(res, 400, { error: `invalid JSON body: ${e.message}` });
      }
      const now = Math.floor(Date.now() / 1000);
      const claims = {};
      for (const name of ['organization_id', 'connection_id', 'login_hint', 'relay_state']) {
        if (typeof body?.[name] === 'string') claims[name] = body[name];
      }
      Object.assign(claims, { exp: now + 300, nbf: now, iat: now, iss: provider.issuer });
      const jwt = await signCompact({ alg: 'RS256', kid: SIGNING_KID, typ: 'JWT' }, claims, SIGNING_KEY);
      return sendJson(res, 200, { jwt });
    }
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
// on /oauth/authorize (not on /oauth/authorize/<uid>, the resume step) the session cookie is dropped from
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
    if (url.pathname === AUTHORIZE_PATH) dropSessionCookie(req, res);
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
// every authorization request session-less; this check keeps the routing honest regardless.)
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
  routes: {
    authorization: AUTHORIZE_PATH,
    token: TOKEN_PATH,
    jwks: KEYS_PATH,
    end_session: '/oidc/logout',
  },
  extraParams: {
    // One validator does the routing for the whole request: it runs after the
    // client and redirect_uri checks, so its errors are redirected with state.
    connection_id(ctx) {
      if (pendingFailure && ctx.path === AUTHORIZE_PATH) {
        const { error, description, omitState } = pendingFailure;
        pendingFailure = null;
        omitStateOnce = omitState;
        throw scalekitError(error, description);
      }
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
          ...userProfile(email, org),
          oid: org.id,
          ...(sid ? { sid: scalekitSid(sid) } : {}),
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
  const isAuth = ctx.path === AUTHORIZE_PATH;
  if (isAuth && ctx.method === 'GET') recordAuthorizationRequest(ctx.query);

  await next();

  // Authorization responses (from /oauth/authorize and its resume step): oidc-provider
  // always adds RFC 9207 iss, which Scalekit does not document.
  const location = ctx.response.get('Location');
  if (location && ctx.path.startsWith(AUTHORIZE_PATH) && (!ISS_ON_REDIRECT || omitStateOnce)) {
    const target = new URL(location, provider.issuer);
    if (target.searchParams.has('code') || target.searchParams.has('error')) {
      if (!ISS_ON_REDIRECT) target.searchParams.delete('iss');
      if (omitStateOnce && target.searchParams.has('error')) {
        target.searchParams.delete('state');
        omitStateOnce = false;
      }
      ctx.response.set('Location', target.href);
    }
  }

  if (ctx.path === '/.well-known/openid-configuration' && ctx.status === 200 && ctx.body && !ISS_ON_REDIRECT) {
    const { authorization_response_iss_parameter_supported: _, ...rest } = ctx.body;
    ctx.body = rest;
  }

  if (ctx.path === TOKEN_PATH && ctx.method === 'POST'
      && ctx.status === 200 && ctx.body && typeof ctx.body.id_token === 'string') {
    const clientId = ctx.oidc?.client?.clientId;
    let idToken = await scalekitIdToken(ctx.body.id_token, clientId, ctx.body.access_token, ctx.oidc?.params?.code);
    if (tamperMode) {
      const mode = tamperMode;
      tamperMode = null;
      idToken = await tamper(mode, idToken, ctx.oidc?.client?.clientSecret ?? '');
      process.stderr.write(`upstream: tampered id_token (${mode})\n`);
    }
    ctx.body = { ...ctx.body, id_token: idToken };
  }

  if (ctx.path === KEYS_PATH && ctx.status === 200 && ctx.body && Array.isArray(ctx.body.keys) && extraJwks.length) {
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
