// The ssobridge console: one module, no framework, no build step. It is a client of the
// admin API and of nothing else (the page's Content-Security-Policy allows this origin only).
//
// Rules kept throughout, each for an attack:
// - Data from the API is put in the page as text (textContent, DOM nodes), never as markup:
//   a client named `<img src=x onerror=alert(1)>` is shown as those characters.
// - The admin token lives in this tab's sessionStorage, goes only in the Authorization
//   header, and never in a URL (exports are fetched with the header, then saved as a Blob).
// - A 401 forgets the token and returns to sign-in.

const TOKEN_KEY = 'ssobridge.console.token';
const ROLE_KEY = 'ssobridge.console.role';
// The page is /<prefix>/admin/console; the API is /<prefix>/admin/.
const API_BASE = new URL('./', document.baseURI);
// Twice a second while the log is shown (and the tab visible): a new event is on screen within a second.
const POLL_MS = 500;
const ORG_LOGINS = 50;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------
// DOM helpers: text only.

/** An element with attributes (strings; `text` sets textContent) and children. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') node.textContent = String(value);
    else if (name === 'onclick') node.addEventListener('click', value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function cell(value, attributes = {}) {
  return el('td', attributes, value ?? '');
}

function button(text, label, onclick, { write = false, className } = {}) {
  const node = el('button', { type: 'button', 'aria-label': label, class: className, text }, []);
  node.addEventListener('click', onclick);
  if (write) {
    node.dataset.write = '';
    node.disabled = !canWrite();
  }
  return node;
}

function time(value) {
  if (value === undefined || value === null || value === '') return '';
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return el('time', { datetime: date.toISOString(), title: date.toISOString(), text: date.toLocaleString() });
}

function yesNo(value) {
  return value ? 'yes' : 'no';
}

function fact(list, term, ...value) {
  list.append(el('dt', { text: term }), el('dd', {}, ...value));
}

/** Replaces a table's rows. Focus on a row's button stays on the same button of the new rows
 * (after an edit), or goes to the section's heading when that row is gone (after a delete). */
function replaceRows(tbody, rows) {
  const active = document.activeElement;
  const label = tbody.contains(active) ? active.getAttribute('aria-label') : null;
  tbody.replaceChildren(...rows);
  if (label === null) return;
  const same = [...tbody.querySelectorAll('button')].find((b) => b.getAttribute('aria-label') === label && !b.disabled);
  (same ?? tbody.closest('section')?.querySelector('h1'))?.focus();
}

// ---------------------------------------------------------------------------------------
// The session.

let token = sessionStorage.getItem(TOKEN_KEY);
let role = sessionStorage.getItem(ROLE_KEY);

function canWrite() {
  return role === 'write';
}

function applyRole() {
  const write = canWrite();
  for (const node of document.querySelectorAll('[data-write]')) node.disabled = !write;
  $('read-only-note').hidden = write || !token;
  $('role').textContent = write ? 'read and write' : 'read only';
}

function signOut(message) {
  const was = token;
  token = null;
  role = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(ROLE_KEY);
  stopPolling();
  $('signin-error').textContent = message ?? '';
  if (was !== null || message) {
    if (location.hash !== '' && location.hash !== '#') history.replaceState(null, '', location.pathname);
    route();
  }
}

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? problem?.title ?? `HTTP ${status}`);
    this.status = status;
    this.problem = problem ?? {};
  }
}

/** One call to the admin API; a non-2xx answer throws an ApiError with its problem. */
async function api(method, path, { query, body, ifMatch, accept } = {}) {
  const url = new URL(path, API_BASE);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  const headers = { Authorization: `Bearer ${token}`, Accept: accept ?? 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (ifMatch) headers['If-Match'] = ifMatch;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
  } catch {
    throw new ApiError(0, { title: 'No answer', detail: 'the broker did not answer; is it running?' });
  }
  if (response.ok) return response;
  const problem = await response.json().catch(() => null);
  if (response.status === 401) {
    signOut('The token was not accepted (it may have been removed from the configuration). Sign in again.');
  }
  throw new ApiError(response.status, problem);
}

async function apiJson(method, path, options) {
  const response = await api(method, path, options);
  const body = response.status === 204 ? null : await response.json();
  return { body, etag: response.headers.get('ETag') };
}

/** A failure in words, for people. */
function explain(error, what = 'it') {
  if (!(error instanceof ApiError)) return `Something went wrong in the console: ${error?.message ?? error}`;
  const detail = error.problem?.detail;
  switch (error.status) {
    case 0: return 'The broker did not answer. Is it running, and is this its operations listener?';
    case 401: return 'The token was not accepted. Sign in again.';
    case 403: return `Not allowed${detail ? ` (${detail})` : ''}: sign in with a write token to make changes.`;
    case 404: return `Not found: ${detail ?? `${what} no longer exists`}.`;
    case 409: return `Refused: ${detail ?? 'it conflicts with the current state'}.`;
    case 412: return `Someone changed ${what} since you opened it. Reload it to see their change, then make yours again.`;
    case 422: {
      const fields = (error.problem?.errors ?? []).map((e) => `${e.pointer || 'body'}: ${e.detail}`);
      return `Not saved: ${fields.length ? fields.join('; ') : detail ?? 'invalid fields'}.`;
    }
    case 503: return `The broker's store is unavailable${detail ? ` (${detail})` : ''}. Try again.`;
    default: return `${error.problem?.title ?? 'Error'} (${error.status})${detail ? `: ${detail}` : ''}.`;
  }
}

function showAlert(message) {
  $('alert').textContent = message ?? '';
}

function notify(message) {
  showAlert('');
  $('notice').textContent = message;
}

/** Runs an action, showing its failure in the page's alert. */
async function attempt(action, what) {
  try {
    showAlert('');
    return await action();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) showAlert(explain(error, what));
    return undefined;
  }
}

// The API has no "who am I": a DELETE that can change nothing tells the roles apart. Its
// ETag never matches a real one (those are 16 hex digits) and `.invalid` is never a
// customer's domain (RFC 2606), so a write token gets 404 (or 412), a read token 403.
async function probeRole() {
  try {
    await api('DELETE', 'routes/role-probe.console.invalid', { ifMatch: '"console-role-probe"' });
    return 'write';
  } catch (error) {
    if (error.status === 403) return 'read';
    if (error.status === 404 || error.status === 412) return 'write';
    throw error;
  }
}

$('signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = $('signin-token');
  const candidate = input.value.trim();
  if (!candidate) return;
  token = candidate;
  $('signin-error').textContent = '';
  try {
    await api('GET', 'status');
    role = await probeRole();
  } catch (error) {
    token = null;
    role = null;
    $('signin-error').textContent =
      error.status === 401 ? 'That token is not an admin token of this broker.' : explain(error);
    input.focus();
    return;
  }
  input.value = '';
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.setItem(ROLE_KEY, role);
  if (!location.hash || location.hash === '#') history.replaceState(null, '', '#clients');
  route();
});

$('sign-out').addEventListener('click', () => signOut('Signed out.'));

// ---------------------------------------------------------------------------------------
// Views.

const VIEWS = {
  clients: () => loadClients(),
  routes: () => loadRoutes(),
  keys: () => loadKeys(),
  events: () => startEvents(),
  org: (rest) => startOrg(rest),
  jobs: () => loadJobs(),
  status: () => loadStatus(),
};
let current = null;

function show(name) {
  for (const section of document.querySelectorAll('main > section.view')) {
    section.hidden = section.id !== `view-${name}`;
  }
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.getAttribute('href') === `#${name}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function route() {
  stopPolling();
  for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
  showAlert('');
  $('notice').textContent = '';
  const signedIn = token !== null;
  $('nav').hidden = !signedIn;
  $('session').hidden = !signedIn;
  applyRole();
  if (!signedIn) {
    current = 'signin';
    show('signin');
    document.title = 'Sign in · ssobridge console';
    $('signin-token').focus();
    return;
  }
  const [name, ...rest] = location.hash.slice(1).split('/');
  const view = name in VIEWS ? name : 'clients';
  const changed = current !== view;
  current = view;
  show(view);
  const heading = $(`${view}-title`);
  document.title = `${heading.textContent} · ssobridge console`;
  if (changed) heading.focus();
  VIEWS[view](rest.map(decodeURIComponent));
}

window.addEventListener('hashchange', () => {
  // The skip link is a fragment too; it is not a view.
  if (location.hash === '#main') return;
  route();
});

// ---------------------------------------------------------------------------------------
// Dialogs. Native <dialog>: modal, Escape closes it, focus returns where it was.

function openDialog(dialog) {
  const opener = document.activeElement;
  for (const alert of dialog.querySelectorAll('.dialog-alert')) alert.textContent = '';
  dialog.addEventListener(
    'close',
    () => {
      // Browsers return focus on close themselves; this is for those that do not.
      const lost = document.activeElement === null || document.activeElement === document.body;
      if (lost && opener instanceof HTMLElement && opener.isConnected) opener.focus();
    },
    { once: true },
  );
  dialog.showModal();
}

for (const dialog of document.querySelectorAll('dialog')) {
  for (const close of dialog.querySelectorAll('button.close')) close.addEventListener('click', () => dialog.close());
}

/** Asks before something that cannot be undone; resolves once `action` succeeded or was cancelled. */
function confirmThen({ title, message, yes }, action) {
  const dialog = $('confirm-dialog');
  $('confirm-title').textContent = title;
  $('confirm-message').textContent = message;
  const old = $('confirm-yes');
  const confirm = old.cloneNode(false);
  confirm.textContent = yes;
  old.replaceWith(confirm);
  confirm.addEventListener('click', async () => {
    confirm.disabled = true;
    try {
      await action();
      dialog.close();
    } catch (error) {
      dialog.querySelector('.dialog-alert').textContent = explain(error);
      if (error instanceof ApiError && error.status === 401) dialog.close();
    } finally {
      confirm.disabled = false;
    }
  });
  openDialog(dialog);
}

/** Shows a secret this once. It is in the page only while the dialog is open. */
function showSecret(clientId, secret, after) {
  const dialog = $('secret-dialog');
  $('secret-client').textContent = clientId;
  $('secret-value').value = secret;
  $('secret-copied').textContent = '';
  dialog.addEventListener(
    'close',
    () => {
      $('secret-value').value = '';
      after?.();
    },
    { once: true },
  );
  openDialog(dialog);
}

$('secret-copy').addEventListener('click', async () => {
  const input = $('secret-value');
  try {
    await navigator.clipboard.writeText(input.value);
    $('secret-copied').textContent = 'Copied to the clipboard.';
  } catch {
    input.focus();
    input.select();
    $('secret-copied').textContent = 'The browser did not allow copying: the secret is selected, press Ctrl+C (⌘C).';
  }
});

function lines(text) {
  return text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
}

/** Shows a failed save in the dialog, marking the fields its JSON Pointers name. */
function formFailure(form, error, what) {
  const alert = form.querySelector('.dialog-alert');
  alert.textContent = explain(error, what);
  if (error instanceof ApiError && error.status === 412 && editing) {
    // Their version, in the form again (what was typed here is lost, as the message says).
    const { kind, id } = editing;
    alert.append(' ', button('Reload', `Reload ${kind} ${id}`, () => {
      form.closest('dialog').close();
      if (kind === 'client') editClient(id);
      else editRoute(id);
    }));
    return;
  }
  const invalid = [];
  for (const { pointer } of error.problem?.errors ?? []) {
    const field = pointer.split('/')[1];
    const input = field && form.querySelector(`[data-field="${CSS.escape(field)}"]`);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      invalid.push(input);
    }
  }
  const first = invalid[0];
  if (first) {
    first.closest('details')?.setAttribute('open', '');
    first.focus();
  } else {
    form.querySelector('.dialog-alert').scrollIntoView({ block: 'nearest' });
  }
}

function clearInvalid(form) {
  for (const node of form.querySelectorAll('[aria-invalid]')) node.removeAttribute('aria-invalid');
}

// ---------------------------------------------------------------------------------------
// Clients.

const clientsState = { cursor: null, q: '' };

async function loadClients(append = false) {
  const table = $('clients-table').tBodies[0];
  await attempt(async () => {
    const { body } = await apiJson('GET', 'clients', {
      query: { q: clientsState.q, cursor: append ? clientsState.cursor : undefined },
    });
    const rows = body.items.map(clientRow);
    if (append) table.append(...rows);
    else replaceRows(table, rows);
    clientsState.cursor = body.next_cursor ?? null;
    $('clients-more').hidden = !clientsState.cursor;
    $('view-clients').querySelector('.empty').hidden = table.rows.length > 0;
  }, 'the clients');
}

function clientRow(client) {
  const id = client.client_id;
  return el(
    'tr',
    { 'data-id': id },
    el('th', { scope: 'row' }, el('code', { text: id })),
    cell(client.name),
    cell(el('ul', { class: 'plain' }, client.redirect_uris.map((uri) => el('li', { text: uri })))),
    cell(client.token_endpoint_auth_method),
    cell(el('span', { class: `badge source-${client.source}`, text: client.source })),
    el(
      'td',
      { class: 'actions' },
      button(canWrite() ? 'Edit' : 'View', `${canWrite() ? 'Edit' : 'View'} client ${id}`, () => editClient(id)),
      client.token_endpoint_auth_method === 'private_key_jwt'
        ? null
        : button('Rotate secret', `Rotate the secret of client ${id}`, () => rotateSecret(id), { write: true }),
      button('Delete', `Delete client ${id}`, () => deleteClient(id), { write: true, className: 'danger' }),
    ),
  );
}

$('clients-filter').addEventListener('submit', (event) => {
  event.preventDefault();
  clientsState.q = $('clients-q').value.trim();
  loadClients();
});
$('clients-more').addEventListener('click', () => loadClients(true));
$('clients-new').addEventListener('click', () => openClientForm(null, null));

const CLIENT_TEXT = ['client_id', 'name', 'fallback', 'default_organization_id', 'default_connection_id', 'initiate_login_uri', 'jwks_uri', 'backchannel_logout_uri'];
const CLIENT_LISTS = ['redirect_uris', 'allowed_organizations', 'post_logout_redirect_uris'];
const CLIENT_CHOICES = ['token_endpoint_auth_method', 'subject', 'id_token_signed_response_alg', 'adapter', 'deprovision'];
const CLIENT_JSON = ['jwks', 'claims'];
const CLIENT_DEFAULTS = {
  token_endpoint_auth_method: 'client_secret_basic',
  subject: 'pairwise',
  id_token_signed_response_alg: 'RS256',
  adapter: 'none',
  fallback: 'pass',
  deprovision: 'disable',
};

let editing = null; // {kind, id, etag, original}

function field(form, name) {
  return form.querySelector(`[data-field="${name}"]`);
}

function fillClientForm(client) {
  const form = $('client-form');
  for (const name of CLIENT_TEXT) field(form, name).value = client?.[name] ?? '';
  for (const name of CLIENT_LISTS) field(form, name).value = (client?.[name] ?? []).join('\n');
  for (const name of CLIENT_CHOICES) field(form, name).value = client?.[name] ?? CLIENT_DEFAULTS[name];
  for (const name of CLIENT_JSON) {
    const value = client?.[name];
    field(form, name).value = value === undefined || value === null ? '' : JSON.stringify(value, null, 2);
  }
  field(form, 'require_pkce').checked = client?.require_pkce ?? false;
  if (!client) field(form, 'fallback').value = '';
}

/** The form as a client document; JSON fields that do not parse throw with the field's name. */
function readClientForm() {
  const form = $('client-form');
  const value = {};
  for (const name of CLIENT_TEXT) {
    const text = field(form, name).value.trim();
    if (text) value[name] = text;
  }
  for (const name of CLIENT_LISTS) value[name] = lines(field(form, name).value);
  for (const name of CLIENT_CHOICES) value[name] = field(form, name).value;
  for (const name of CLIENT_JSON) {
    const text = field(form, name).value.trim();
    if (!text) continue;
    try {
      value[name] = JSON.parse(text);
    } catch {
      throw new ApiError(422, { errors: [{ pointer: `/${name}`, detail: 'is not valid JSON' }] });
    }
  }
  value.require_pkce = field(form, 'require_pkce').checked;
  return value;
}

/** A JSON merge patch (RFC 7396) from `before` to `after`, over `fields`: what changed, and
 * `null` for what was emptied (the API resets it to its default). */
function mergePatch(before, after, fields) {
  const patch = {};
  for (const name of fields) {
    const was = JSON.stringify(before[name] ?? null);
    const now = JSON.stringify(after[name] ?? null);
    if (was !== now) patch[name] = after[name] ?? null;
  }
  return patch;
}

async function editClient(id) {
  await attempt(async () => {
    const { body, etag } = await apiJson('GET', `clients/${encodeURIComponent(id)}`);
    openClientForm(body, etag);
  }, `client ${id}`);
}

function openClientForm(client, etag) {
  const form = $('client-form');
  clearInvalid(form);
  fillClientForm(client);
  editing = client ? { kind: 'client', id: client.client_id, etag, original: client } : null;
  const idField = field(form, 'client_id');
  idField.readOnly = Boolean(client);
  $('client-dialog-title').textContent = client
    ? `${canWrite() ? 'Edit' : 'Client'} ${client.client_id}`
    : 'New client';
  form.querySelector('.source-note').textContent = client?.source === 'config'
    ? 'This client comes from the config file: a change here lasts until the next start, when the file wins.'
    : '';
  for (const input of form.querySelectorAll('input, select, textarea')) {
    if (input !== idField) input.disabled = !canWrite();
  }
  form.querySelector('button[type=submit]').textContent = client ? 'Save changes' : 'Create client';
  applyRole();
  openDialog($('client-dialog'));
}

$('client-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearInvalid(form);
  form.querySelector('.dialog-alert').textContent = '';
  const submit = form.querySelector('button[type=submit]');
  submit.disabled = true;
  try {
    const value = readClientForm();
    if (editing) {
      const fields = [...CLIENT_TEXT.filter((f) => f !== 'client_id'), ...CLIENT_LISTS, ...CLIENT_CHOICES, ...CLIENT_JSON, 'require_pkce'];
      const patch = mergePatch(editing.original, value, fields);
      if (Object.keys(patch).length === 0) {
        $('client-dialog').close();
        notify('Nothing changed.');
        return;
      }
      const { body } = await apiJson('PATCH', `clients/${encodeURIComponent(editing.id)}`, { body: patch, ifMatch: editing.etag });
      $('client-dialog').close();
      notify(`Saved client ${body.client_id}.`);
    } else {
      for (const [name, fallback] of Object.entries(CLIENT_DEFAULTS)) if (value[name] === fallback) delete value[name];
      if (value.allowed_organizations.length === 0) delete value.allowed_organizations;
      const { body } = await apiJson('POST', 'clients', { body: value });
      $('client-dialog').close();
      notify(`Created client ${body.client.client_id}.`);
      if (body.client_secret) showSecret(body.client.client_id, body.client_secret);
    }
    loadClients();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      $('client-dialog').close();
      return;
    }
    formFailure(form, error, editing ? `client ${editing.id}` : 'the client');
  } finally {
    submit.disabled = !canWrite();
  }
});

function rotateSecret(id) {
  confirmThen(
    {
      title: `Rotate the secret of ${id}?`,
      message: 'A new secret replaces the current one at once: the client cannot sign in with the old one any more. The new one is shown once.',
      yes: 'Rotate the secret',
    },
    async () => {
      const { body } = await apiJson('POST', `clients/${encodeURIComponent(id)}/secret`);
      $('confirm-dialog').close();
      notify(`Rotated the secret of ${id}.`);
      showSecret(id, body.client_secret);
    },
  );
}

function deleteClient(id) {
  confirmThen(
    {
      title: `Delete client ${id}?`,
      message: 'Its logins in progress fail; tokens already issued stay valid until they expire. A client from the config file comes back at the next start.',
      yes: 'Delete the client',
    },
    async () => {
      await api('DELETE', `clients/${encodeURIComponent(id)}`);
      notify(`Deleted client ${id}.`);
      loadClients();
    },
  );
}

// ---------------------------------------------------------------------------------------
// Routes.

const routesState = { cursor: null, domain: '', client: '' };

async function loadRoutes(append = false) {
  const table = $('routes-table').tBodies[0];
  await attempt(async () => {
    const { body } = await apiJson('GET', 'routes', {
      query: { domain: routesState.domain, client: routesState.client, cursor: append ? routesState.cursor : undefined },
    });
    const rows = body.items.map(routeRow);
    if (append) table.append(...rows);
    else replaceRows(table, rows);
    routesState.cursor = body.next_cursor ?? null;
    $('routes-more').hidden = !routesState.cursor;
    $('view-routes').querySelector('.empty').hidden = table.rows.length > 0;
  }, 'the routes');
}

function routeRow(route) {
  const domain = route.domain;
  return el(
    'tr',
    { 'data-id': domain },
    el('th', { scope: 'row' }, el('code', { text: domain })),
    cell(orgLink(route.organization_id)),
    cell(route.connection_id),
    cell(route.clients.length ? route.clients.join(', ') : 'all'),
    cell(yesNo(route.include_subdomains)),
    cell(yesNo(route.verified)),
    cell(el('span', { class: `badge source-${route.source}`, text: route.source })),
    el(
      'td',
      { class: 'actions' },
      button(canWrite() ? 'Edit' : 'View', `${canWrite() ? 'Edit' : 'View'} route ${domain}`, () => editRoute(domain)),
      button('Delete', `Delete route ${domain}`, () => deleteRoute(route), { write: true, className: 'danger' }),
    ),
  );
}

function orgLink(organization) {
  if (!organization) return '';
  return el('a', { href: `#org/${encodeURIComponent(organization)}`, text: organization });
}

$('routes-filter').addEventListener('submit', (event) => {
  event.preventDefault();
  routesState.domain = $('routes-domain').value.trim();
  routesState.client = $('routes-client').value.trim();
  loadRoutes();
});
$('routes-more').addEventListener('click', () => loadRoutes(true));
$('routes-new').addEventListener('click', () => openRouteForm(null, null));

async function editRoute(domain) {
  await attempt(async () => {
    const { body, etag } = await apiJson('GET', `routes/${encodeURIComponent(domain)}`);
    openRouteForm(body, etag);
  }, `route ${domain}`);
}

function openRouteForm(route, etag) {
  const form = $('route-form');
  clearInvalid(form);
  editing = route ? { kind: 'route', id: route.domain, etag, original: route } : null;
  for (const name of ['domain', 'organization_id', 'connection_id']) field(form, name).value = route?.[name] ?? '';
  field(form, 'clients').value = (route?.clients ?? []).join('\n');
  field(form, 'include_subdomains').checked = route?.include_subdomains ?? false;
  field(form, 'verified').checked = route?.verified ?? false;
  field(form, 'domain').readOnly = Boolean(route);
  for (const input of form.querySelectorAll('input, select, textarea')) {
    if (input !== field(form, 'domain')) input.disabled = !canWrite();
  }
  $('route-dialog-title').textContent = route ? `${canWrite() ? 'Edit route' : 'Route'} ${route.domain}` : 'New route';
  const notes = {
    config: 'This route comes from the config file: a change here lasts until the next start, when the file wins.',
    synced: 'This route is synced from Scalekit: changing it here makes it an api route, which sync leaves alone from then on.',
  };
  form.querySelector('.source-note').textContent = notes[route?.source] ?? '';
  form.querySelector('button[type=submit]').textContent = route ? 'Save changes' : 'Create route';
  applyRole();
  openDialog($('route-dialog'));
}

$('route-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearInvalid(form);
  form.querySelector('.dialog-alert').textContent = '';
  const submit = form.querySelector('button[type=submit]');
  submit.disabled = true;
  const value = {
    domain: field(form, 'domain').value.trim(),
    organization_id: field(form, 'organization_id').value.trim(),
    connection_id: field(form, 'connection_id').value.trim() || undefined,
    clients: lines(field(form, 'clients').value),
    include_subdomains: field(form, 'include_subdomains').checked,
    verified: field(form, 'verified').checked,
  };
  try {
    if (editing) {
      const patch = mergePatch(editing.original, value, ['organization_id', 'connection_id', 'clients', 'include_subdomains', 'verified']);
      if (Object.keys(patch).length === 0) {
        $('route-dialog').close();
        notify('Nothing changed.');
        return;
      }
      const { body } = await apiJson('PATCH', `routes/${encodeURIComponent(editing.id)}`, { body: patch, ifMatch: editing.etag });
      $('route-dialog').close();
      notify(`Saved route ${body.domain}.`);
    } else {
      if (value.clients.length === 0) delete value.clients;
      const { body } = await apiJson('POST', 'routes', { body: value });
      $('route-dialog').close();
      notify(`Created route ${body.domain}.`);
    }
    loadRoutes();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      $('route-dialog').close();
      return;
    }
    formFailure(form, error, editing ? `route ${editing.id}` : 'the route');
  } finally {
    submit.disabled = !canWrite();
  }
});

function deleteRoute(route) {
  const comesBack = {
    config: ' It is in the config file, so it comes back at the next start.',
    synced: ' It is synced from Scalekit, so it comes back at the next sync while the domain is verified there.',
  };
  confirmThen(
    {
      title: `Delete route ${route.domain}?`,
      message: `Users at ${route.domain} no longer sign in with ${route.organization_id} through this route.${comesBack[route.source] ?? ''}`,
      yes: 'Delete the route',
    },
    async () => {
      await api('DELETE', `routes/${encodeURIComponent(route.domain)}`);
      notify(`Deleted route ${route.domain}.`);
      loadRoutes();
    },
  );
}

// ---------------------------------------------------------------------------------------
// Signing keys.

async function loadKeys() {
  await attempt(async () => {
    const { body } = await apiJson('GET', 'keys');
    replaceRows(
      $('keys-table').tBodies[0],
      body.items.map((key) =>
        el(
          'tr',
          { 'data-id': key.kid },
          el('th', { scope: 'row' }, el('code', { text: key.kid })),
          cell(key.kty),
          cell(key.algorithms.join(', ')),
          cell(key.active ? 'signing' : 'published only'),
          cell(key.source),
          cell(time(key.created_at)),
          cell(time(key.retired_at)),
        ),
      ),
    );
  }, 'the keys');
}

function rotateKey(kty) {
  confirmThen(
    {
      title: `Rotate the ${kty} signing key?`,
      message: `A new ${kty} key signs from now on (on other instances within seconds). The current one stays published until the tokens it signed have expired.`,
      yes: `Rotate the ${kty} key`,
    },
    async () => {
      const { body } = await apiJson('POST', 'keys/rotate', { query: { kty } });
      notify(`A new ${body.kty} key signs now: ${body.kid}.`);
      loadKeys();
    },
  );
}

$('keys-rotate-rsa').addEventListener('click', () => rotateKey('RSA'));
$('keys-rotate-ec').addEventListener('click', () => rotateKey('EC'));
$('keys-refresh').addEventListener('click', () => loadKeys());

// ---------------------------------------------------------------------------------------
// Events: the log with its filters, and the per-organization view.

// What the reasons a login fails most often mean; any other reason shows as it is sent.
const REASONS = {
  access_denied: 'the identity provider denied the sign-in',
  domain_not_found: 'single sign-on is not set up for this email domain',
  invalid_user_domain: "the user's email domain is not allowed by the organization's single sign-on",
  no_active_connections: "the organization's single sign-on is not active",
  connection_not_active: "the organization's single sign-on connection is not active",
  no_configured_connections: 'the organization has no single sign-on set up',
  user_not_active: 'the user is deactivated at their identity provider',
  authentication_not_completed: 'the user did not complete the sign-in at their identity provider',
  invalid_organization_id: 'the upstream does not know this organization',
  invalid_connection_id: 'the upstream does not know this connection',
  login_required: 'the user must sign in again at their identity provider',
  invalid_id_token: "the identity provider's token was invalid",
  state_expired: 'the sign-in expired before the user came back from their identity provider',
  nonce_mismatch: "the identity provider's token did not belong to this sign-in",
  organization_mismatch: 'the upstream answered for another organization than the login was routed to',
  adapter_refused: "the downstream system's adapter refused to link the user",
  deprovisioned: 'the user was deprovisioned from their directory',
  rate_limited: 'too many sign-in attempts from the same place',
};

function reasonText(reason) {
  if (!reason) return '';
  const words = REASONS[reason];
  return words ? `${reason}: ${words}` : reason;
}

let pollTimer = null;
let polling = null; // the function polled while its view is shown

function stopPolling() {
  clearTimeout(pollTimer);
  pollTimer = null;
  polling = null;
}

function startPolling(poll, enabled) {
  stopPolling();
  polling = poll;
  const tick = async () => {
    if (polling !== poll) return;
    if (document.visibilityState === 'visible' && enabled()) await poll();
    if (polling === poll) pollTimer = setTimeout(tick, POLL_MS);
  };
  pollTimer = setTimeout(tick, POLL_MS);
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && polling) polling();
});

function localToRfc3339(value) {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

function eventFilters() {
  return {
    organization: $('events-organization').value.trim(),
    client: $('events-client').value.trim(),
    type: $('events-type').value,
    outcome: $('events-outcome').value,
    reason: $('events-reason').value.trim(),
    since: localToRfc3339($('events-since').value),
    until: localToRfc3339($('events-until').value),
    limit: $('events-limit').value || undefined,
  };
}

function who(event) {
  return event.email ?? (event.email_hash ? `hash ${String(event.email_hash).slice(0, 12)}…` : null) ?? event.actor ?? event.subject ?? '';
}

function duration(event) {
  return event.duration_ms === undefined || event.duration_ms === null ? '' : `${event.duration_ms} ms`;
}

function outcomeBadge(event) {
  return el('span', { class: `badge outcome-${event.outcome === 'failure' ? 'failure' : 'success'}`, text: event.outcome });
}

function detailsButton(event) {
  return button('Details', `Details of the ${event.outcome} ${event.type} at ${event.time}`, () => openEvent(event.id));
}

function eventRow(event) {
  const what = event.type === 'admin' ? [event.action, event.resource].filter(Boolean).join(' ') : '';
  return el(
    'tr',
    { 'data-id': event.id, class: event.outcome === 'failure' ? 'failure' : null },
    cell(time(event.time)),
    cell(event.type),
    cell(outcomeBadge(event)),
    cell(orgLink(event.organization)),
    cell(event.client),
    cell(event.reason ? reasonText(event.reason) : what),
    cell(who(event)),
    cell(duration(event)),
    el('td', {}, detailsButton(event)),
  );
}

/** Puts `items` (newest first) in `tbody`, keeping the rows already there, so that focus stays put. */
function renderRows(tbody, items, row) {
  const existing = new Map([...tbody.rows].map((tr) => [tr.dataset.id, tr]));
  const wanted = new Set(items.map((item) => String(item.id)));
  for (const [id, tr] of existing) if (!wanted.has(id)) tr.remove();
  let next = tbody.firstElementChild;
  for (const item of items) {
    const id = String(item.id);
    let tr = existing.get(id);
    if (!tr || !tr.isConnected) tr = row(item);
    if (tr === next) {
      next = next.nextElementSibling;
    } else {
      tbody.insertBefore(tr, next);
    }
  }
}

async function fetchEvents(filters, cursor) {
  const { body } = await apiJson('GET', 'events', { query: { ...filters, cursor } });
  return body;
}

// Live updates ask only for what is newer than the newest event seen. Log ids are `<ms>-<seq>`
// and only grow (a Redis stream's, and the memory store's alike): a poll first reads the log's
// newest id (one entry), and only when that moved asks for what the filters select `after`
// the previous newest, a few entries. Reading the head first means every event up to it is in
// what is read next: none is skipped.
const NEWER_LIMIT = 200; // more than this between two polls: start again from the newest page
const MAX_ROWS = 500; // live rows kept (older ones are a "Load older events" away)

function idParts(id) {
  const [ms, seq] = String(id).split('-').map(Number);
  return [ms || 0, seq || 0];
}

/** Orders events newest first, by id. */
function byNewest(a, b) {
  const [am, as] = idParts(a.id);
  const [bm, bs] = idParts(b.id);
  return bm - am || bs - as;
}

function newer(id, than) {
  return than === null || byNewest({ id }, { id: than }) < 0;
}

/** The log's newest event id (any event), where live updates go on from; null when empty. */
async function logHead() {
  const page = await fetchEvents({ limit: 1 });
  return page.items[0]?.id ?? null;
}

/** The newest page `filters` select, and the log's head it is current up to. */
async function fetchLatest(filters, limit) {
  const head = await logHead();
  const page = await fetchEvents(limit ? { ...filters, limit } : filters);
  return { page, head: page.items[0] && newer(page.items[0].id, head) ? page.items[0].id : head };
}

/** What `filters` select after `anchor` (a log id, or null for an empty log), newest first,
 * and the new anchor; null when more came than one poll brings. */
async function fetchNewer(filters, anchor) {
  const head = await logHead();
  if (head === null || !newer(head, anchor)) return { items: [], head: anchor };
  const page = await fetchEvents({ ...filters, after: anchor ?? undefined, limit: NEWER_LIMIT });
  if (page.next_cursor) return null;
  const items = page.items.filter((e) => newer(e.id, anchor));
  return { items, head: items[0] && newer(items[0].id, head) ? items[0].id : head };
}

/** Merges `fresh` into `items` (both newest first), without repeats. */
function merge(items, fresh) {
  const seen = new Set(items.map((e) => e.id));
  return [...fresh.filter((e) => !seen.has(e.id)), ...items].sort(byNewest);
}

/** Runs `change` (which adds rows above) keeping the rows the reader is looking at where they
 * are on screen: when the table's first row is scrolled out of view, the page scrolls by what
 * was added above the first row in view. When the table's top is in view, new rows show. */
function keepingScroll(tbody, change) {
  const rows = [...tbody.rows];
  const first = rows[0];
  // The first row wholly in view is the one being read (rows may change height when new
  // rows change the columns' widths).
  const anchor = first && first.getBoundingClientRect().top < 0 ? rows.find((tr) => tr.getBoundingClientRect().top >= 0) : null;
  const before = anchor?.getBoundingClientRect().top;
  change();
  if (anchor?.isConnected) window.scrollBy(0, anchor.getBoundingClientRect().top - before);
}

const eventsState = { filters: {}, items: [], cursor: null, anchor: null, loaded: false, busy: false, cap: MAX_ROWS, generation: 0 };

async function refreshEvents() {
  if (eventsState.busy) return;
  eventsState.busy = true;
  const generation = eventsState.generation;
  try {
    const filters = eventsState.filters;
    const fresh = eventsState.loaded ? await fetchNewer(filters, eventsState.anchor) : null;
    if (generation !== eventsState.generation) return;
    const tbody = $('events-table').tBodies[0];
    if (fresh === null) {
      // The first load, or more arrived than a poll brings: the newest page again.
      const { page, head } = await fetchLatest(filters);
      if (generation !== eventsState.generation) return;
      Object.assign(eventsState, { items: page.items, cursor: page.next_cursor ?? null, anchor: head, loaded: true, cap: MAX_ROWS });
    } else if (fresh.items.length) {
      $('events-news').textContent = `${fresh.items.length} new ${fresh.items.length === 1 ? 'event' : 'events'}`;
      eventsState.items = merge(eventsState.items, fresh.items);
      eventsState.anchor = fresh.head;
      if (eventsState.items.length > eventsState.cap) {
        eventsState.items.length = eventsState.cap;
        eventsState.cursor = eventsState.items.at(-1).id; // "Load older events" goes on from the last row kept
      }
    } else {
      eventsState.anchor = fresh.head;
    }
    keepingScroll(tbody, () => renderRows(tbody, eventsState.items, eventRow));
    $('events-more').hidden = !eventsState.cursor;
    $('view-events').querySelector('.empty').hidden = eventsState.items.length > 0;
    $('events-updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
    showAlert('');
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) showAlert(explain(error, 'the event log'));
  } finally {
    if (generation === eventsState.generation) eventsState.busy = false;
  }
}

function startEvents() {
  eventsState.generation += 1;
  Object.assign(eventsState, { filters: eventFilters(), items: [], cursor: null, anchor: null, loaded: false, busy: false, cap: MAX_ROWS });
  $('events-table').tBodies[0].replaceChildren();
  $('view-events').querySelector('.empty').hidden = true;
  refreshEvents();
  startPolling(refreshEvents, () => $('events-live').checked);
}

$('events-filter').addEventListener('submit', (event) => {
  event.preventDefault();
  startEvents();
});
$('events-clear').addEventListener('click', () => {
  $('events-filter').reset();
  startEvents();
});
$('events-refresh').addEventListener('click', () => {
  eventsState.loaded = false; // a full reload
  refreshEvents();
});
$('events-more').addEventListener('click', () =>
  attempt(async () => {
    const generation = eventsState.generation;
    const page = await fetchEvents(eventsState.filters, eventsState.cursor);
    if (generation !== eventsState.generation) return;
    eventsState.items = merge(eventsState.items, page.items);
    eventsState.cap = Math.max(MAX_ROWS, eventsState.items.length); // what the reader loaded stays
    eventsState.cursor = page.next_cursor ?? null;
    renderRows($('events-table').tBodies[0], eventsState.items, eventRow);
    $('events-more').hidden = !eventsState.cursor;
  }, 'the event log'),
);

// The export carries the bearer header, so it is fetched here and saved as a file: a plain
// link would need the token in its URL.
$('events-export').addEventListener('click', () =>
  attempt(async () => {
    const { limit, ...filters } = eventFilters();
    const response = await api('GET', 'events/export', { query: filters, accept: 'application/x-ndjson' });
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: `ssobridge-events-${new Date().toISOString().replaceAll(':', '-')}.ndjson`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    notify(`Exported ${blob.size} bytes of events.`);
  }, 'the export'),
);

async function openEvent(id) {
  await attempt(async () => {
    const { body } = await apiJson('GET', `events/${encodeURIComponent(id)}`);
    const list = $('event-facts');
    list.replaceChildren();
    $('event-title').textContent = `${body.outcome === 'failure' ? 'Failed' : 'Successful'} ${body.type} event`;
    const first = ['time', 'type', 'outcome', 'reason', 'organization', 'connection', 'client', 'routed_by'];
    const names = [...first.filter((n) => n in body), ...Object.keys(body).filter((n) => !first.includes(n))];
    for (const name of names) {
      const value = body[name];
      let shown = value;
      if (name === 'time') shown = time(value);
      else if (name === 'reason') shown = reasonText(value);
      else if (name === 'organization') shown = orgLink(value);
      else if (typeof value === 'object' && value !== null) shown = el('code', { text: JSON.stringify(value) });
      fact(list, name, shown);
    }
    openDialog($('event-dialog'));
  }, 'the event');
}

// The last logins of one organization, failures first.

const orgState = { organization: null, items: [], anchor: null, loaded: false, busy: false };

function startOrg([organization]) {
  const result = $('org-result');
  if (!organization) {
    orgState.organization = null;
    result.hidden = true;
    return;
  }
  $('org-id').value = organization;
  if (orgState.organization !== organization) {
    $('org-table').tBodies[0].replaceChildren();
    $('org-summary').textContent = '';
    Object.assign(orgState, { organization, items: [], anchor: null, loaded: false, busy: false });
  }
  result.hidden = false;
  $('org-heading').textContent = `The last ${ORG_LOGINS} logins of ${organization}, failures first`;
  refreshOrg();
  startPolling(refreshOrg, () => $('org-live').checked);
}

function orgRow(event) {
  return el(
    'tr',
    { 'data-id': event.id, class: event.outcome === 'failure' ? 'failure' : null },
    cell(outcomeBadge(event)),
    cell(time(event.time)),
    cell(event.reason ? reasonText(event.reason) : ''),
    cell(who(event)),
    cell(event.client),
    cell(event.connection),
    cell(duration(event)),
    el('td', {}, detailsButton(event)),
  );
}

async function refreshOrg() {
  const organization = orgState.organization;
  if (!organization || orgState.busy) return;
  orgState.busy = true;
  try {
    const filters = { organization, type: 'login' };
    const fresh = orgState.loaded ? await fetchNewer(filters, orgState.anchor) : null;
    if (orgState.organization !== organization) return;
    if (fresh === null) {
      const { page, head } = await fetchLatest(filters, ORG_LOGINS);
      if (orgState.organization !== organization) return;
      Object.assign(orgState, { items: page.items, anchor: head, loaded: true });
    } else {
      orgState.items = merge(orgState.items, fresh.items).slice(0, ORG_LOGINS);
      orgState.anchor = fresh.head;
    }
    const items = orgState.items;
    const failures = items.filter((e) => e.outcome === 'failure');
    const successes = items.filter((e) => e.outcome !== 'failure');
    const tbody = $('org-table').tBodies[0];
    keepingScroll(tbody, () => renderRows(tbody, [...failures, ...successes], orgRow));
    $('org-summary').textContent = items.length
      ? `${failures.length} failed and ${successes.length} successful of the last ${items.length} logins.`
      : '';
    $('view-org').querySelector('.empty').hidden = items.length > 0;
    showAlert('');
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) showAlert(explain(error, 'the event log'));
  } finally {
    if (orgState.organization === organization) orgState.busy = false;
  }
}

$('org-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const organization = $('org-id').value.trim();
  if (organization) location.hash = `#org/${encodeURIComponent(organization)}`;
});
$('org-refresh').addEventListener('click', () => {
  orgState.loaded = false; // a full reload
  refreshOrg();
});
$('org-all').addEventListener('click', () => {
  $('events-filter').reset();
  $('events-organization').value = orgState.organization ?? '';
});

// ---------------------------------------------------------------------------------------
// Jobs: owed work, retried or given up by an operator.

async function loadJobs() {
  await attempt(async () => {
    const { body } = await apiJson('GET', 'jobs');
    const wanted = $('jobs-state').value;
    const shown = body.items.filter((job) => !wanted || job.state === wanted);
    const failed = body.items.filter((job) => job.state === 'failed').length;
    replaceRows($('jobs-table').tBodies[0], shown.map(jobRow));
    $('jobs-summary').textContent = `${body.items.length - failed} pending, ${failed} failed.`;
    $('view-jobs').querySelector('.empty').hidden = shown.length > 0;
  }, 'the jobs');
}

function jobRow(job) {
  const id = job.id;
  return el(
    'tr',
    { 'data-id': id, class: job.state === 'failed' ? 'failure' : null },
    el('th', { scope: 'row' }, el('code', { text: id })),
    cell(job.kind),
    cell(el('span', { class: `badge state-${job.state}`, text: job.state })),
    cell(String(job.attempts)),
    cell(time(job.created_at)),
    cell(job.state === 'failed' ? 'only when retried' : time(job.next_at)),
    cell(job.last_error),
    el(
      'td',
      { class: 'actions' },
      button('Retry', `Retry job ${id}`, () => retryJob(job), { write: true }),
      button('Delete', `Delete job ${id}`, () => deleteJob(job), { write: true, className: 'danger' }),
    ),
  );
}

async function retryJob(job) {
  await attempt(async () => {
    const response = await api('POST', `jobs/${encodeURIComponent(job.id)}/retry`);
    notify(response.status === 204 ? `Job ${job.id} ran again and is done.` : `Job ${job.id} runs again now, its attempts counted afresh.`);
    await loadJobs();
  }, `job ${job.id}`);
}

function deleteJob(job) {
  confirmThen(
    {
      title: `Delete job ${job.id}?`,
      message: `This gives up on the ${job.kind} it stands for: nothing will do it. Only do so when the work is done some other way or no longer wanted.`,
      yes: 'Delete the job',
    },
    async () => {
      await api('DELETE', `jobs/${encodeURIComponent(job.id)}`);
      notify(`Deleted job ${job.id}.`);
      await loadJobs();
    },
  );
}

$('jobs-state').addEventListener('change', () => loadJobs());
$('jobs-refresh').addEventListener('click', () => loadJobs());

// ---------------------------------------------------------------------------------------
// Status.

async function loadStatus() {
  await attempt(async () => {
    const { body } = await apiJson('GET', 'status');
    const service = $('status-service');
    service.replaceChildren();
    fact(service, 'Version', body.version);
    fact(service, 'Store', `${body.store_backend}, ${body.store_reachable ? 'reachable' : 'NOT reachable'}`);
    fact(service, 'Upstream', `${body.upstream_issuer}, discovery ${body.upstream_discovery_reachable ? 'reachable' : 'NOT reachable'}`);
    $('status-keys').tBodies[0].replaceChildren(
      ...body.signing_keys.map((key) =>
        el('tr', {}, el('th', { scope: 'row' }, el('code', { text: key.kid })), cell(key.alg), cell(yesNo(key.active)), cell(`${key.age_seconds} s ago`)),
      ),
    );
    const sync = $('status-sync');
    sync.replaceChildren();
    const routeSync = body.route_sync;
    if (!routeSync) {
      fact(sync, 'Route sync', 'not configured (no [scalekit] section)');
      return;
    }
    fact(sync, 'Full sync', routeSync.interval_seconds ? `every ${routeSync.interval_seconds} s` : 'none (webhooks only)');
    fact(sync, 'Webhooks', routeSync.webhooks_enabled ? 'accepted' : 'off');
    fact(sync, 'Lookup on miss', yesNo(routeSync.lookup_on_miss));
    const last = routeSync.last_sync;
    if (last) {
      fact(sync, 'Last sync', time(last.finished_at), last.ok ? ' (completed)' : ` (FAILED: ${last.error ?? 'no detail'})`);
      if (last.last_success_at) fact(sync, 'Last successful sync', time(last.last_success_at));
      const c = last.changes;
      fact(sync, 'Changes', `${c.routes_added} added, ${c.routes_updated} updated, ${c.routes_removed} removed (${c.organizations} organizations, ${c.domains} domains, ${c.unverified_domains} unverified)`);
      fact(sync, 'Routes', `${last.routes.config} config, ${last.routes.api} api, ${last.routes.synced} synced`);
    } else {
      fact(sync, 'Last sync', 'none yet');
    }
    const hook = routeSync.last_webhook;
    fact(sync, 'Last webhook', hook ? [time(hook.received_at), ` ${hook.event_type}`, hook.organization_id ? ` (${hook.organization_id})` : ''] : 'none yet');
  }, 'the status');
}

$('status-refresh').addEventListener('click', () => loadStatus());

// ---------------------------------------------------------------------------------------

route();
