// rp.mjs: one login through an OpenID Provider, driven the way Auth0 or Cognito
// (as an OIDC relying party) would drive ssobridge. Uses openid-client 6.x.
//
// RUN (once per login)
//   node rp.mjs '<json>'
//   {
//     "issuer":        "http://127.0.0.1:PORT",       required; discovery at <issuer>/.well-known/openid-configuration
//     "client_id":     "...",                         required
//     "client_secret": "...",                         required, except with private_key_jwt
//     "token_endpoint_auth": "client_secret_post",    default; or "client_secret_basic", or
//                                                     "private_key_jwt" (needs "private_jwk")
//     "private_jwk":   {...},                         the client's private JWK (kid, alg set):
//                                                     openid-client signs a client_assertion with it
//     "id_token_signed_response_alg": "ES256",        the client's registered ID token alg
//                                                     (openid-client then accepts only that alg)
//     "redirect_uri":  "http://127.0.0.1:9/cb",       required; never fetched
//     "mode":          "auth0" | "cognito",           default "auth0"
//     "params":        {"login_hint": "...", ...},    extra authorization request parameters
//     "nonce":         false,                         send a nonce and check it (default false)
//     "pkce":          true|false,                    default true for auth0, false for cognito
//     "scope":         "openid profile email",        default
//     "max_hops":      20,                            default
//     "verify_signature": true,                       default; see CHECKS
//     "max_iat_skew":  60                             default (seconds); null disables; see CHECKS
//     "max_age":       300                            send max_age and have openid-client check the
//                                                     ID token's auth_time against it (maxAge)
//     "end_session":   {"post_logout_redirect_uri": "...", "state": "..."}
//                                                     after the login, build the RP-Initiated Logout
//                                                     URL with openid-client's buildEndSessionUrl
//                                                     (id_token_hint = the ID token just received;
//                                                     openid-client adds client_id); output as
//                                                     "end_session_url", never fetched
//     "reveal_access_token": true                     output the access token as "access_token"
//                                                     (to check it at /userinfo after a sign-out)
//   }
//   auth0:   PKCE S256, no nonce unless asked, claims from the ID token, no userinfo call.
//   cognito: no PKCE, no nonce unless asked, always calls userinfo with the access token
//            (the expected subject is the ID token's sub).
//   A random state is always sent and checked. openid-client also checks the RFC 9207
//   `iss` callback parameter when discovery has authorization_response_iss_parameter_supported.
//
// CHECKS on the ID token, beyond the callback checks above
//   openid-client checks iss, aud, exp, nonce (when sent), the alg against discovery's
//   id_token_signing_alg_values_supported, and (cognito) userinfo sub == ID token sub.
//   By default openid-client does NOT verify the signature of an ID token received from
//   the token endpoint (OIDC Core 3.1.3.7 lets TLS stand in for it); rp.mjs turns that on
//   with enableNonRepudiationChecks (JWKS fetched from jwks_uri), unless
//   "verify_signature": false. openid-client also accepts an iat in the future; rp.mjs
//   rejects iat > now + max_iat_skew (error "iat_in_future", stage token).
//
// BROWSER
//   Follows redirects by hand (fetch with redirect: 'manual'), with a cookie jar per host
//   (host:port; name=value, Path matched as a prefix, Max-Age/Expires honored for
//   deletion), until a Location whose origin+pathname equals redirect_uri; that URL is not
//   fetched. At most max_hops fetches. A response that is not a redirect ends the run.
//
// OUTPUT: exactly one JSON line on stdout; exit code 0 (2 for bad input, 1 on a crash).
//   success: {"ok":true,"id_token_claims":{...},"userinfo":{...}|null,"token_type":"bearer",
//             "expires_in":600,"access_token_present":true,"scope":"...","id_token":"<jwt>",
//             "id_token_header":{...},"hops":["http://host/path", ...]}
//            (token_type is as openid-client normalizes it: lower-case "bearer")
//   failure: {"ok":false,"stage":"input|discovery|authorize|callback|token|userinfo",
//             "error":"...","error_description":"...","status":<int|null>,"body":"<=500 chars|null",
//             "hops":[...], "callback_params":{...}   (callback stage only)}
//   - authorize: a hop failed or answered without a redirect (status + body snippet),
//                or too many hops (error "too_many_hops").
//   - callback:  the redirect to redirect_uri carried `error`, or openid-client rejected the
//                authorization response (state/iss mismatch, missing code) before any
//                token request was made.
//   - token:     the token request failed or its response / ID token did not validate.
//                error is the OAuth error code or openid-client's error code
//                (e.g. OAUTH_JWT_CLAIM_COMPARISON_FAILED), error_description its message.
//   - userinfo:  the userinfo request failed (cognito mode).
//   "hops" lists every URL fetched, without its query string, in order.

import * as client from 'openid-client';

function emit(obj, code = 0) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
  process.exitCode = code;
}

const snippet = (s) => (typeof s === 'string' ? s.slice(0, 500) : s == null ? null : String(s).slice(0, 500));
const stripQuery = (u) => `${u.origin}${u.pathname}`;

function describeError(err) {
  const out = {
    error: err?.error ?? err?.code ?? err?.name ?? 'error',
    error_description: err?.error_description ?? err?.message ?? String(err),
    status: typeof err?.status === 'number' ? err.status : null,
    body: null,
  };
  const { cause } = err ?? {};
  if (cause instanceof Error) {
    out.error_description = `${out.error_description}: ${cause.message}`;
  } else if (typeof Response !== 'undefined' && cause instanceof Response) {
    out.status ??= cause.status;
  } else if (cause instanceof URLSearchParams) {
    out.body = snippet(cause.toString());
  } else if (cause && typeof cause === 'object') {
    try { out.body = snippet(JSON.stringify(cause)); } catch { /* ignore */ }
  }
  if (err?.response instanceof Response) out.status ??= err.response.status;
  return out;
}

// --- input -----------------------------------------------------------------

let input;
try {
  input = JSON.parse(process.argv[2] ?? '');
  const required = input.token_endpoint_auth === 'private_key_jwt'
    ? ['issuer', 'client_id', 'redirect_uri']
    : ['issuer', 'client_id', 'client_secret', 'redirect_uri'];
  for (const k of required) {
    if (typeof input[k] !== 'string' || input[k] === '') throw new Error(`"${k}" (string) is required`);
  }
  if (input.token_endpoint_auth === 'private_key_jwt' && typeof input.private_jwk !== 'object') {
    throw new Error('"private_jwk" (object) is required with private_key_jwt');
  }
  input.mode ??= 'auth0';
  if (!['auth0', 'cognito'].includes(input.mode)) throw new Error('"mode" must be "auth0" or "cognito"');
  if (![undefined, 'client_secret_post', 'client_secret_basic', 'private_key_jwt'].includes(input.token_endpoint_auth)) {
    throw new Error('"token_endpoint_auth" must be "client_secret_post", "client_secret_basic" or "private_key_jwt"');
  }
} catch (e) {
  emit({ ok: false, stage: 'input', error: 'bad_input', error_description: e.message, status: null, body: null }, 2);
  process.exit();
}

const mode = input.mode;
const usePkce = typeof input.pkce === 'boolean' ? input.pkce : mode === 'auth0';
const useNonce = input.nonce === true;
const scope = input.scope ?? 'openid profile email';
const maxHops = Number.isInteger(input.max_hops) ? input.max_hops : 20;
const verifySignature = input.verify_signature !== false;
async function clientAuthentication() {
  switch (input.token_endpoint_auth) {
    case 'client_secret_basic': return client.ClientSecretBasic(input.client_secret);
    case 'private_key_jwt': {
      const { importJWK } = await import('jose');
      const key = await importJWK(input.private_jwk, input.private_jwk.alg);
      return client.PrivateKeyJwt({ key, kid: input.private_jwk.kid });
    }
    default: return client.ClientSecretPost(input.client_secret);
  }
}
const maxIatSkew = input.max_iat_skew === null ? null : Number.isFinite(input.max_iat_skew) ? input.max_iat_skew : 60;
const redirectUri = new URL(input.redirect_uri);
const hops = [];

// --- cookie jar --------------------------------------------------------------

const jar = new Map(); // host -> Map(`${name};${path}` -> {name, value, path})

function storeCookies(url, response) {
  const lines = response.headers.getSetCookie?.() ?? [];
  for (const line of lines) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq < 1) continue;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    let path;
    let expired = false;
    for (const attr of attrs) {
      const i = attr.indexOf('=');
      const key = (i === -1 ? attr : attr.slice(0, i)).trim().toLowerCase();
      const val = i === -1 ? '' : attr.slice(i + 1).trim();
      if (key === 'path' && val.startsWith('/')) path = val;
      if (key === 'max-age' && Number(val) <= 0) expired = true;
      if (key === 'expires' && Date.parse(val) <= Date.now()) expired = true;
    }
    if (!path) {
      const dir = url.pathname.slice(0, url.pathname.lastIndexOf('/'));
      path = dir === '' ? '/' : dir;
    }
    if (!jar.has(url.host)) jar.set(url.host, new Map());
    const cookies = jar.get(url.host);
    const key = `${name};${path}`;
    if (expired) cookies.delete(key);
    else cookies.set(key, { name, value, path });
  }
}

function pathMatches(cookiePath, requestPath) {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

function cookieHeader(url) {
  const cookies = jar.get(url.host);
  if (!cookies) return undefined;
  const matching = [...cookies.values()]
    .filter((c) => pathMatches(c.path, url.pathname))
    .sort((a, b) => b.path.length - a.path.length);
  return matching.length ? matching.map((c) => `${c.name}=${c.value}`).join('; ') : undefined;
}

// --- the run -----------------------------------------------------------------

let stage = 'discovery';
let tokenRequested = false;

async function main() {
  let config;
  try {
    const metadata = {};
    if (input.client_secret) metadata.client_secret = input.client_secret;
    if (input.id_token_signed_response_alg) metadata.id_token_signed_response_alg = input.id_token_signed_response_alg;
    config = await client.discovery(
      new URL(input.issuer),
      input.client_id,
      metadata,
      await clientAuthentication(),
      {
        execute: verifySignature
          ? [client.allowInsecureRequests, client.enableNonRepudiationChecks]
          : [client.allowInsecureRequests],
        timeout: 10,
      },
    );
  } catch (e) {
    return emit({ ok: false, stage, ...describeError(e), hops });
  }
  const tokenEndpoint = config.serverMetadata().token_endpoint;
  config[client.customFetch] = (url, options) => {
    if (url === tokenEndpoint || url.startsWith(`${tokenEndpoint}?`)) tokenRequested = true;
    return fetch(url, options);
  };

  // Authorization request.
  stage = 'authorize';
  const state = client.randomState();
  const nonce = useNonce ? client.randomNonce() : undefined;
  const codeVerifier = usePkce ? client.randomPKCECodeVerifier() : undefined;
  const authParams = {
    redirect_uri: input.redirect_uri,
    scope,
    state,
  };
  if (nonce) authParams.nonce = nonce;
  if (typeof input.max_age === 'number') authParams.max_age = String(input.max_age);
  if (codeVerifier) {
    authParams.code_challenge = await client.calculatePKCECodeChallenge(codeVerifier);
    authParams.code_challenge_method = 'S256';
  }
  for (const [k, v] of Object.entries(input.params ?? {})) {
    if (v !== undefined && v !== null) authParams[k] = String(v);
  }
  let url = client.buildAuthorizationUrl(config, authParams);

  let callbackUrl;
  for (;;) {
    if (hops.length >= maxHops) {
      return emit({
        ok: false, stage, error: 'too_many_hops', error_description: `more than ${maxHops} redirects`,
        status: null, body: null, hops,
      });
    }
    hops.push(stripQuery(url));
    let res;
    try {
      const headers = { accept: 'text/html,application/json;q=0.9,*/*;q=0.8' };
      const cookie = cookieHeader(url);
      if (cookie) headers.cookie = cookie;
      res = await fetch(url, { redirect: 'manual', headers, signal: AbortSignal.timeout(10_000) });
    } catch (e) {
      return emit({ ok: false, stage, ...describeError(e), hops });
    }
    storeCookies(url, res);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      const next = new URL(location, url);
      if (stripQuery(next) === stripQuery(redirectUri)) {
        callbackUrl = next;
        break;
      }
      url = next;
      continue;
    }
    const body = await res.text().catch(() => '');
    return emit({
      ok: false,
      stage,
      error: 'unexpected_response',
      error_description: `${res.status} ${res.statusText} from ${stripQuery(url)} without a redirect`,
      status: res.status,
      body: snippet(body),
      hops,
    });
  }

  // Callback.
  stage = 'callback';
  const callbackParams = Object.fromEntries(callbackUrl.searchParams);
  if (callbackUrl.searchParams.has('error')) {
    return emit({
      ok: false,
      stage,
      error: callbackUrl.searchParams.get('error'),
      error_description: callbackUrl.searchParams.get('error_description'),
      status: null,
      body: null,
      hops,
      callback_params: callbackParams,
    });
  }

  let tokens;
  try {
    tokens = await client.authorizationCodeGrant(config, callbackUrl, {
      pkceCodeVerifier: codeVerifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
      ...(typeof input.max_age === 'number' ? { maxAge: input.max_age } : {}),
    });
  } catch (e) {
    const out = { ok: false, stage: tokenRequested ? 'token' : 'callback', ...describeError(e), hops };
    if (!tokenRequested) out.callback_params = callbackParams;
    return emit(out);
  }
  stage = 'token';
  const claims = tokens.claims();
  if (!claims) {
    return emit({ ok: false, stage, error: 'no_id_token', error_description: 'no ID token in the token response', status: null, body: null, hops });
  }
  const now = Math.floor(Date.now() / 1000);
  if (maxIatSkew !== null && typeof claims.iat === 'number' && claims.iat > now + maxIatSkew) {
    return emit({
      ok: false, stage, error: 'iat_in_future',
      error_description: `ID token iat ${claims.iat} is ${claims.iat - now}s in the future (max skew ${maxIatSkew}s)`,
      status: null, body: null, hops,
    });
  }

  let userinfo = null;
  if (mode === 'cognito') {
    stage = 'userinfo';
    try {
      userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    } catch (e) {
      return emit({ ok: false, stage, ...describeError(e), hops });
    }
  }

  const [rawHeader] = tokens.id_token.split('.');
  const extra = {};
  if (input.end_session && typeof input.end_session === 'object') {
    extra.end_session_url = client
      .buildEndSessionUrl(config, { id_token_hint: tokens.id_token, ...input.end_session })
      .href;
  }
  if (input.reveal_access_token === true) extra.access_token = tokens.access_token;
  return emit({
    ...extra,
    ok: true,
    id_token_claims: { ...claims },
    userinfo: userinfo ? { ...userinfo } : null,
    token_type: tokens.token_type ?? null,
    expires_in: tokens.expires_in ?? null,
    access_token_present: typeof tokens.access_token === 'string' && tokens.access_token !== '',
    scope: tokens.scope ?? null,
    id_token: tokens.id_token,
    id_token_header: JSON.parse(Buffer.from(rawHeader, 'base64url').toString()),
    hops,
  });
}

try {
  await main();
} catch (e) {
  process.stderr.write(`rp.mjs crashed at stage ${stage}: ${e?.stack ?? e}\n`);
  emit({ ok: false, stage, error: 'crash', error_description: String(e?.message ?? e), status: null, body: null, hops }, 1);
}
