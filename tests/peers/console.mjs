// console.mjs: drives Debian's Chromium (via playwright-core) through ssobridge's admin
// console (/admin/console) as an operator would, and reports what the page showed.
//
//   node console.mjs '<json>'
//   input: {console_url, token, scenario, artifacts (a directory for screenshots), shot_prefix
//           (in the screenshots' names, after `console-`), chromium
//           (default $CHROMIUM or /usr/bin/chromium), and per scenario:
//           write:    {client_id, route_domain}
//           read:     {client_id}              a client that exists
//           hostile:  {name}                   the name of a client that exists
//           keyboard: {client_id}
//           events:   {organization, and either success_url, failure_url, stop_prefix: two
//                     /authorize URLs of the demo, one that signs in and one that fails in
//                     `organization`, and the client's redirect URI they end at; or signal:
//                     true: the script prints a line READY once the organization's view is
//                     open, and the test records a failed then a successful login itself}
//           jobs:     {failed_id, pending_id}  two jobs in the queue
//           live:     {} the log holds more events than a page; the script prints READY once
//                     it has scrolled and focused, and the test records three newer events
//   Scenarios:
//   - write: sign in; create a client (its secret shown once, copied), edit it, edit it again
//     while someone else changes it (412), rotate its secret, delete it; create, edit and
//     delete a route; rotate the RSA key; show the status; sign out.
//   - read: sign in with a read token; the next page of clients; what is disabled; a forced
//     write answers 403 readably; a token no longer accepted returns to sign-in.
//   - hostile: the client list with a client whose name is markup.
//   - keyboard: sign in, create and delete a client with the keyboard alone.
//   - jobs: the Jobs view: the queue, failed only, retry the failed job, delete the pending
//     one after confirming.
//   - live: the event log open, scrolled down a page's way with a row's Details button
//     focused; three newer events arrive: which rows are the same DOM nodes as before, where
//     the focused row is on screen before and after, what keeps focus, and every request the
//     page made to /admin/events with its query and how many events it answered; then how
//     many requests it makes while hidden, and on being shown again.
//   - events: the per-organization view open, a successful then a failed login in another
//     tab (or recorded by the test); when the failure appears (seen_at, ms since the epoch),
//     and what the page shows of it; its details; the event log filtered by the organization
//     and failures; the export.
//   stdout, one JSON line: {ok, error, steps: {name: observations}, violations (CSP, from
//   securitypolicyviolation events), console_errors (violations too), http_errors (the 4xx
//   answers the browser logs), page_errors (uncaught exceptions), dialogs (alert/confirm
//   opened by the page), token_in_url, referers (API requests that carried a Referer),
//   storage: {session_keys, local_keys, cookies}}; exit 0 unless the script itself crashes.
import { chromium } from 'playwright-core';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

const input = JSON.parse(process.argv[2] ?? '{}');
const executablePath = input.chromium ?? process.env.CHROMIUM ?? '/usr/bin/chromium';
const TIMEOUT = 20000;

const result = {
  ok: false, error: null, steps: {}, violations: [], console_errors: [], http_errors: [], page_errors: [], dialogs: [],
  token_in_url: false, referers: [], storage: null,
};

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-default-apps', '--disable-extensions',
  ],
});

const origin = new URL(input.console_url).origin;
const apiBase = new URL('./', input.console_url).href;
const shot = (page, name) =>
  page.screenshot({ path: path.join(input.artifacts, `console-${input.shot_prefix ?? ''}${name}.png`), fullPage: true });

/** Runs one named step; its return value is what the step observed. */
async function step(name, fn) {
  try {
    result.steps[name] = (await fn()) ?? true;
    return result.steps[name];
  } catch (error) {
    throw new Error(`${name}: ${error?.message ?? error}`);
  }
}

function watch(page) {
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    // The API's 4xx answers (the role probe's 404, a 403, a 412) are logged by the browser
    // as failed loads: expected here, and kept apart from the page's own errors.
    if (message.text().startsWith('Failed to load resource: the server responded with a status of 4')) {
      result.http_errors.push(message.text());
    } else {
      result.console_errors.push(message.text());
    }
  });
  page.on('pageerror', (error) => result.page_errors.push(String(error?.message ?? error)));
  page.on('dialog', async (dialog) => {
    result.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    await dialog.dismiss().catch(() => {});
  });
  page.on('request', (request) => {
    if (input.token && request.url().includes(input.token)) result.token_in_url = true;
    if (request.url().startsWith(apiBase) && request.headers().referer) result.referers.push(request.url());
  });
}

const text = async (locator) => ((await locator.textContent()) ?? '').trim();
const focusedId = (page) => page.evaluate(() => document.activeElement?.id ?? null);
const focusedName = (page) =>
  page.evaluate(() => {
    const el = document.activeElement;
    return el ? (el.getAttribute('aria-label') ?? el.textContent ?? '').trim() : null;
  });
/** Whether the focused element draws a focus indicator. */
const focusVisible = (page) =>
  page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return false;
    const style = getComputedStyle(el);
    return el.matches(':focus-visible') && style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
  });

async function signIn(page, token) {
  await page.goto(input.console_url);
  await page.locator('#signin-token').waitFor();
  const focused = await focusedId(page);
  await page.locator('#signin-token').fill(token);
  await page.keyboard.press('Enter');
  await page.locator('#nav').waitFor({ state: 'visible', timeout: TIMEOUT });
  await page.locator('#clients-table tbody tr').first().waitFor({ timeout: TIMEOUT });
  return {
    focused_at_start: focused,
    role: await text(page.locator('#role')),
    read_only_note: await page.locator('#read-only-note').isVisible(),
    hash: new URL(page.url()).hash,
  };
}

/** What the API holds, asked directly (as another admin would). */
async function apiCall(method, route, { body, ifMatch } = {}) {
  const headers = { authorization: `Bearer ${input.token}` };
  if (body) headers['content-type'] = 'application/json';
  if (ifMatch) headers['if-match'] = ifMatch;
  const response = await fetch(new URL(route, apiBase), { method, headers, body: body && JSON.stringify(body) });
  return { status: response.status, etag: response.headers.get('etag'), body: await response.json().catch(() => null) };
}

async function storage(page) {
  return page.evaluate(() => ({
    session_keys: Object.keys(sessionStorage),
    local_keys: Object.keys(localStorage),
    cookies: document.cookie,
  }));
}

const row = (page, table, id) => page.locator(`#${table} tbody tr[data-id="${id}"]`);

// ---------------------------------------------------------------------------------------

async function writeScenario(page) {
  const id = input.client_id;
  await step('sign_in', () => signIn(page, input.token));
  result.storage = await storage(page);
  await step('create_client', async () => {
    await page.getByRole('button', { name: 'New client' }).click();
    const dialog = page.locator('#client-dialog');
    await dialog.waitFor({ state: 'visible' });
    await dialog.getByLabel('Client ID', { exact: true }).fill(id);
    await dialog.getByLabel('Name', { exact: true }).fill('Console Test App');
    await dialog.getByLabel('Redirect URIs (one per line)').fill('https://app.example/callback\nhttps://app.example/other');
    await dialog.getByText('More settings').click();
    await dialog.getByLabel('Post-logout redirect URIs', { exact: false }).fill('https://app.example/signed-out');
    await dialog.getByLabel('When the directory deactivates a user').selectOption('delete');
    await dialog.getByRole('button', { name: 'Create client' }).click();
    const secretDialog = page.locator('#secret-dialog');
    await secretDialog.waitFor({ state: 'visible', timeout: TIMEOUT });
    const secret = await page.locator('#secret-value').inputValue();
    await page.getByRole('button', { name: 'Copy the secret' }).click();
    await page.locator('#secret-copied').filter({ hasText: /./ }).waitFor();
    const copied = await page.evaluate(() => navigator.clipboard.readText()).catch((e) => `unreadable: ${e}`);
    await shot(page, 'client-secret');
    const observed = {
      secret_length: secret.length,
      copied_matches: copied === secret,
      copy_message: await text(page.locator('#secret-copied')),
      warning: await text(page.locator('#secret-warning')),
      focused_in_dialog: await page.evaluate(() => document.activeElement?.closest('dialog')?.id ?? null),
    };
    await page.keyboard.press('Escape');
    await secretDialog.waitFor({ state: 'hidden' });
    // The dialog's close event (which clears it) follows the close itself by a task.
    observed.secret_left_in_page = await page
      .waitForFunction(
        (s) => !(document.documentElement.outerHTML.includes(s) || [...document.querySelectorAll('input')].some((i) => i.value === s)),
        secret,
        { timeout: 2000 },
      )
      .then(() => false, () => true);
    await row(page, 'clients-table', id).waitFor();
    observed.row_text = await text(row(page, 'clients-table', id));
    observed.notice = await text(page.locator('#notice'));
    const stored = (await apiCall('GET', `clients/${id}`)).body ?? {};
    observed.api = { deprovision: stored.deprovision, post_logout_redirect_uris: stored.post_logout_redirect_uris };
    result.secret = secret;
    return observed;
  });
  await step('edit_client', async () => {
    await page.getByRole('button', { name: `Edit client ${id}` }).click();
    await page.locator('#client-dialog').waitFor({ state: 'visible' });
    const idReadOnly = await page.locator('#client-client_id').evaluate((el) => el.readOnly);
    await page.locator('#client-dialog').getByLabel('Name', { exact: true }).fill('Console Test App (edited)');
    await page.locator('dialog[open]').getByRole('button', { name: 'Save changes' }).click();
    await page.locator('#client-dialog').waitFor({ state: 'hidden' });
    await row(page, 'clients-table', id).filter({ hasText: 'Console Test App (edited)' }).waitFor();
    return { id_read_only: idReadOnly, notice: await text(page.locator('#notice')) };
  });
  await step('edit_client_changed_meanwhile', async () => {
    await page.getByRole('button', { name: `Edit client ${id}` }).click();
    await page.locator('#client-dialog').waitFor({ state: 'visible' });
    // Another admin changes the client while the dialog is open.
    const current = await apiCall('GET', `clients/${id}`);
    const other = await apiCall('PATCH', `clients/${id}`, { body: { require_pkce: true }, ifMatch: current.etag });
    await page.locator('#client-dialog').getByLabel('Name', { exact: true }).fill('Mine');
    await page.locator('dialog[open]').getByRole('button', { name: 'Save changes' }).click();
    const alert = page.locator('#client-dialog .dialog-alert');
    await alert.filter({ hasText: /./ }).waitFor({ timeout: TIMEOUT });
    await shot(page, 'client-stale');
    const observed = { other_admin_status: other.status, alert: await text(alert) };
    // Reload shows their version.
    await alert.getByRole('button', { name: `Reload client ${id}` }).click();
    await page.locator('#client-dialog .dialog-alert:empty').waitFor({ state: 'attached' });
    await page.locator('#client-require_pkce:checked').waitFor({ timeout: TIMEOUT });
    observed.reloaded_name = await page.locator('#client-name').inputValue();
    await page.keyboard.press('Escape');
    await page.locator('#client-dialog').waitFor({ state: 'hidden' });
    observed.name_kept = (await apiCall('GET', `clients/${id}`)).body?.name;
    return observed;
  });
  await step('rotate_secret', async () => {
    await page.getByRole('button', { name: `Rotate the secret of client ${id}` }).click();
    await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
    const question = await text(page.locator('#confirm-title'));
    await page.locator('#confirm-dialog').getByRole('button', { name: 'Rotate the secret' }).click();
    await page.locator('#secret-dialog').waitFor({ state: 'visible', timeout: TIMEOUT });
    const secret = await page.locator('#secret-value').inputValue();
    await page.locator('#secret-dialog').getByRole('button', { name: 'I have stored it' }).click();
    await page.locator('#secret-dialog').waitFor({ state: 'hidden' });
    return { question, new_secret_differs: secret.length > 0 && secret !== result.secret, new_secret: secret };
  });
  await step('delete_client', async () => {
    await page.getByRole('button', { name: `Delete client ${id}` }).click();
    await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
    const observed = {
      question: await text(page.locator('#confirm-title')),
      focused: await focusedName(page),
    };
    await shot(page, 'client-delete');
    await page.locator('#confirm-dialog').getByRole('button', { name: 'Delete the client' }).click();
    await page.locator('#confirm-dialog').waitFor({ state: 'hidden', timeout: TIMEOUT });
    await row(page, 'clients-table', id).waitFor({ state: 'detached', timeout: TIMEOUT });
    observed.notice = await text(page.locator('#notice'));
    observed.api_status_after = (await apiCall('GET', `clients/${id}`)).status;
    return observed;
  });
  const domain = input.route_domain;
  await step('create_route', async () => {
    await page.getByRole('link', { name: 'Routes' }).click();
    await page.locator('#routes-table tbody tr, #view-routes .empty:visible').first().waitFor({ timeout: TIMEOUT });
    await page.getByRole('button', { name: 'New route' }).click();
    const dialog = page.locator('#route-dialog');
    await dialog.getByLabel('Email domain').fill(domain);
    await dialog.getByLabel('Organization ID').fill('org_console');
    await dialog.getByRole('button', { name: 'Create route' }).click();
    await row(page, 'routes-table', domain).waitFor({ timeout: TIMEOUT });
    return { row_text: await text(row(page, 'routes-table', domain)) };
  });
  await step('edit_route', async () => {
    await page.getByRole('button', { name: `Edit route ${domain}` }).click();
    const dialog = page.locator('#route-dialog');
    await dialog.getByLabel('Connection ID (empty: the organization chooses)').fill('conn_console');
    await dialog.getByLabel('Subdomains match too').check();
    await page.locator('dialog[open]').getByRole('button', { name: 'Save changes' }).click();
    await row(page, 'routes-table', domain).filter({ hasText: 'conn_console' }).waitFor({ timeout: TIMEOUT });
    await shot(page, 'routes');
    return { row_text: await text(row(page, 'routes-table', domain)), api: (await apiCall('GET', `routes/${domain}`)).body };
  });
  await step('delete_route', async () => {
    await page.getByRole('button', { name: `Delete route ${domain}` }).click();
    await page.locator('#confirm-dialog').getByRole('button', { name: 'Delete the route' }).click();
    await row(page, 'routes-table', domain).waitFor({ state: 'detached', timeout: TIMEOUT });
    return { api_status_after: (await apiCall('GET', `routes/${domain}`)).status };
  });
  await step('rotate_key', async () => {
    await page.getByRole('link', { name: 'Signing keys' }).click();
    await page.locator('#keys-table tbody tr').first().waitFor({ timeout: TIMEOUT });
    const before = await page.locator('#keys-table tbody tr').count();
    await page.getByRole('button', { name: 'Rotate the RSA key' }).click();
    await page.locator('#confirm-dialog').getByRole('button', { name: 'Rotate the RSA key' }).click();
    await page.locator('#notice').filter({ hasText: 'signs now' }).waitFor({ timeout: TIMEOUT });
    await page.locator('#keys-table tbody tr').nth(before).waitFor({ timeout: TIMEOUT });
    await shot(page, 'keys');
    return {
      keys_before: before,
      keys_after: await page.locator('#keys-table tbody tr').count(),
      notice: await text(page.locator('#notice')),
      rotated_rows: await page.locator('#keys-table tbody tr', { hasText: 'rotated' }).count(),
    };
  });
  await step('status', async () => {
    await page.getByRole('link', { name: 'Status' }).click();
    await page.locator('#status-service dd').first().waitFor({ timeout: TIMEOUT });
    await shot(page, 'status');
    return { service: await text(page.locator('#status-service')), keys: await page.locator('#status-keys tbody tr').count() };
  });
  await step('sign_out', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#signin-token').waitFor({ state: 'visible' });
    return { storage: await storage(page), nav_hidden: await page.locator('#nav').isHidden() };
  });
}

async function readScenario(page) {
  await step('sign_in', () => signIn(page, input.token));
  await step('paging', async () => {
    const rows = page.locator('#clients-table tbody tr');
    const first = await rows.count();
    const more = page.getByRole('button', { name: 'Load more clients' });
    const visible = await more.isVisible();
    await more.click();
    await rows.nth(first).waitFor({ timeout: TIMEOUT });
    await more.waitFor({ state: 'hidden' });
    return { first_page: first, more_visible: visible, after_more: await rows.count() };
  });
  await step('disabled', async () => {
    const id = input.client_id;
    await shot(page, 'read-only');
    const enabled = async (name) => page.getByRole('button', { name, exact: true }).isEnabled();
    const observed = {
      new_client: await enabled('New client'),
      view_client: await enabled(`View client ${id}`),
      rotate_secret: await enabled(`Rotate the secret of client ${id}`),
      delete_client: await enabled(`Delete client ${id}`),
    };
    await page.getByRole('button', { name: `View client ${id}` }).click();
    await page.locator('#client-dialog').waitFor({ state: 'visible' });
    observed.dialog_title = await text(page.locator('#client-dialog-title'));
    observed.save = await page.locator('#client-form button[type=submit]').isEnabled();
    observed.name_field = await page.locator('#client-name').isEnabled();
    await page.keyboard.press('Escape');
    await page.locator('#client-dialog').waitFor({ state: 'hidden' });
    await page.getByRole('link', { name: 'Routes' }).click();
    await page.locator('#routes-table tbody tr, #view-routes .empty:visible').first().waitFor({ timeout: TIMEOUT });
    observed.new_route = await enabled('New route');
    await page.getByRole('link', { name: 'Signing keys' }).click();
    await page.locator('#keys-table tbody tr').first().waitFor({ timeout: TIMEOUT });
    observed.rotate_rsa = await enabled('Rotate the RSA key');
    return observed;
  });
  await step('forced_write', async () => {
    // Someone re-enables the button (developer tools): the API still says no, readably.
    await page.locator('#keys-rotate-rsa').evaluate((b) => { b.disabled = false; });
    await page.locator('#keys-rotate-rsa').click();
    await page.locator('#confirm-yes').click();
    const alert = page.locator('#confirm-dialog .dialog-alert');
    await alert.filter({ hasText: /./ }).waitFor({ timeout: TIMEOUT });
    await shot(page, 'read-only-refused');
    const observed = { alert: await text(alert) };
    await page.keyboard.press('Escape');
    await page.locator('#confirm-dialog').waitFor({ state: 'hidden' });
    return observed;
  });
  await step('token_refused', async () => {
    // The token stops being accepted (removed from the configuration): back to sign-in.
    await page.evaluate(() => sessionStorage.setItem('ssobridge.console.token', 'a-token-nobody-configured'));
    await page.reload();
    await page.locator('#signin-token').waitFor({ state: 'visible', timeout: TIMEOUT });
    await page.locator('#signin-error').filter({ hasText: /./ }).waitFor();
    return {
      message: await text(page.locator('#signin-error')),
      session_keys: await page.evaluate(() => Object.keys(sessionStorage)),
      nav_hidden: await page.locator('#nav').isHidden(),
    };
  });
}

async function hostileScenario(page) {
  await step('sign_in', () => signIn(page, input.token));
  await step('list', async () => {
    const cells = page.locator('#clients-table tbody td', { hasText: input.name });
    await cells.first().waitFor({ timeout: TIMEOUT });
    await page.waitForTimeout(300); // the onerror of an injected image would have fired by now
    await shot(page, 'hostile-name');
    return {
      cell_text: await text(cells.first()),
      images: await page.locator('main img').count(),
      scripts: await page.locator('script').count(),
    };
  });
  await step('open', async () => {
    const id = await page.locator('#clients-table tbody tr', { hasText: input.name }).first().getAttribute('data-id');
    await page.getByRole('button', { name: `Edit client ${id}` }).click();
    await page.locator('#client-dialog').waitFor({ state: 'visible' });
    const observed = { name_field: await page.locator('#client-name').inputValue() };
    await page.keyboard.press('Escape');
    return observed;
  });
  await step('organization', async () => {
    // A hostile organization id typed into the per-organization view stays text too.
    await page.goto(`${input.console_url}#org/${encodeURIComponent(input.name)}`);
    await page.locator('#org-heading').filter({ hasText: 'failures first' }).waitFor({ timeout: TIMEOUT });
    await page.waitForTimeout(300);
    return { heading: await text(page.locator('#org-heading')), images: await page.locator('main img').count() };
  });
}

async function keyboardScenario(page) {
  const id = input.client_id;
  const tabTo = async (predicate, limit = 60) => {
    for (let i = 0; i < limit; i++) {
      await page.keyboard.press('Tab');
      if (await predicate()) return i + 1;
    }
    throw new Error(`not reached by Tab: ${predicate}`);
  };
  const isFocused = (name) => async () => (await focusedName(page)) === name;
  await step('sign_in', async () => {
    await page.goto(input.console_url);
    await page.locator('#signin-token').waitFor();
    const focused = await focusedId(page);
    await page.keyboard.type(input.token);
    await page.keyboard.press('Enter');
    await page.locator('#clients-table tbody tr').first().waitFor({ timeout: TIMEOUT });
    return { focused_at_start: focused, focused_after: await focusedId(page) };
  });
  await step('create', async () => {
    const tabs = await tabTo(isFocused('New client'));
    const visible = await focusVisible(page);
    await shot(page, 'keyboard-focus');
    await page.keyboard.press('Enter');
    await page.locator('#client-dialog').waitFor({ state: 'visible' });
    const first = await focusedId(page);
    await page.keyboard.type(id); // the client id field has focus
    await page.keyboard.press('Tab');
    await page.keyboard.type('Keyboard App');
    await page.keyboard.press('Tab');
    await page.keyboard.type('https://keyboard.example/cb');
    await tabTo(isFocused('Create client'), 30);
    await page.keyboard.press('Enter');
    await page.locator('#secret-dialog').waitFor({ state: 'visible', timeout: TIMEOUT });
    const inSecret = await focusedName(page);
    await page.keyboard.press('Escape');
    await page.locator('#secret-dialog').waitFor({ state: 'hidden' });
    await row(page, 'clients-table', id).waitFor({ timeout: TIMEOUT });
    return { tabs_to_new_client: tabs, focus_visible: visible, first_field: first, focused_in_secret_dialog: inSecret, focused_after: await focusedName(page) };
  });
  await step('delete', async () => {
    await tabTo(isFocused(`Delete client ${id}`));
    await page.keyboard.press('Enter');
    await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
    const first = await focusedName(page);
    await page.keyboard.press('Escape'); // changed my mind
    await page.locator('#confirm-dialog').waitFor({ state: 'hidden' });
    const back = await focusedName(page);
    const still = await row(page, 'clients-table', id).count();
    await page.keyboard.press('Enter');
    await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
    await page.keyboard.press('Shift+Tab');
    const confirm = await focusedName(page);
    await page.keyboard.press('Enter');
    await row(page, 'clients-table', id).waitFor({ state: 'detached', timeout: TIMEOUT });
    return {
      focused_in_confirm: first, focused_after_escape: back, kept_after_escape: still, confirm_button: confirm,
      focused_after_delete: await focusedId(page),
    };
  });
  await step('navigate', async () => {
    // The sections are links in the header: Shift+Tab back to them, Enter, focus on the heading.
    for (let i = 0; i < 60 && (await focusedName(page)) !== 'Status'; i++) await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Enter');
    await page.locator('#status-service dd').first().waitFor({ timeout: TIMEOUT });
    return { focused: await focusedId(page), hash: new URL(page.url()).hash };
  });
}

async function jobsScenario(page) {
  const { failed_id: failed, pending_id: pending } = input;
  const rowsOf = () =>
    page.locator('#jobs-table tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent.trim())));
  await step('sign_in', () => signIn(page, input.token));
  await step('list', async () => {
    await page.getByRole('link', { name: 'Jobs' }).click();
    await row(page, 'jobs-table', failed).waitFor({ timeout: TIMEOUT });
    await shot(page, 'jobs');
    return { rows: await rowsOf(), summary: await text(page.locator('#jobs-summary')), focused: await focusedId(page) };
  });
  await step('failed_only', async () => {
    await page.getByLabel('Show').selectOption('failed');
    await row(page, 'jobs-table', pending).waitFor({ state: 'detached', timeout: TIMEOUT });
    const rows = await rowsOf();
    await page.getByLabel('Show').selectOption('');
    await row(page, 'jobs-table', pending).waitFor({ timeout: TIMEOUT });
    return { rows };
  });
  await step('retry', async () => {
    await page.getByRole('button', { name: `Retry job ${failed}` }).click();
    await page.locator('#notice').filter({ hasText: failed }).waitFor({ timeout: TIMEOUT });
    const notice = await text(page.locator('#notice'));
    // The broker's worker runs it at once; Refresh until that attempt is on screen.
    const attempts = () => row(page, 'jobs-table', failed).locator('td').nth(2).textContent();
    for (let i = 0; i < 40 && (await attempts()) !== '1'; i++) {
      await page.waitForTimeout(250);
      await page.getByRole('button', { name: 'Refresh' }).click();
    }
    return { notice, row: (await rowsOf()).find((r) => r[0] === failed) };
  });
  await step('delete', async () => {
    await page.getByRole('button', { name: `Delete job ${pending}` }).click();
    await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
    const focused = await focusedName(page);
    const message = await text(page.locator('#confirm-message'));
    await page.getByRole('button', { name: 'Delete the job' }).click();
    await row(page, 'jobs-table', pending).waitFor({ state: 'detached', timeout: TIMEOUT });
    return { focused_in_confirm: focused, message, notice: await text(page.locator('#notice')), rows: await rowsOf() };
  });
}

async function liveScenario(page) {
  await step('sign_in', () => signIn(page, input.token));
  const requests = [];
  page.on('response', async (response) => {
    const url = new URL(response.url());
    if (!url.pathname.endsWith('/admin/events')) return;
    const body = await response.json().catch(() => null);
    requests.push({ query: Object.fromEntries(url.searchParams), items: body?.items?.length ?? null, status: response.status() });
  });
  const rows = page.locator('#events-table tbody tr');
  await step('opened', async () => {
    await page.getByRole('link', { name: 'Event log' }).click();
    await rows.nth(49).waitFor({ timeout: TIMEOUT });
    await page.waitForTimeout(1200); // a few quiet polls
    return { rows: await rows.count(), more_visible: await page.locator('#events-more').isVisible() };
  });
  await step('before', async () => {
    const quiet = requests.length;
    // The reader's place: the 20th row at the top of the window, its Details button focused
    // from the keyboard.
    const observed = await page.evaluate(() => {
      const trs = [...document.querySelectorAll('#events-table tbody tr')];
      trs.forEach((tr, i) => { tr.dataset.mark = String(i); });
      trs[20].scrollIntoView({ block: 'start' });
      return { scroll_y: window.scrollY };
    });
    await page.locator('#events-table tbody tr[data-mark="20"] button').focus();
    return {
      ...observed,
      requests_so_far: quiet,
      focused: await focusedName(page),
      top: await page.locator('#events-table tbody tr[data-mark="20"]').evaluate((tr) => tr.getBoundingClientRect().top),
    };
  });
  const polled = requests.length;
  await step('arrived', async () => {
    process.stdout.write('READY\n');
    await rows.nth(52).waitFor({ timeout: TIMEOUT });
    const arrived = Date.now();
    await page.waitForTimeout(1200); // a few polls after the new events
    const observed = await page.evaluate(() => {
      const trs = [...document.querySelectorAll('#events-table tbody tr')];
      return {
        rows: trs.length,
        kept: trs.filter((tr) => tr.dataset.mark !== undefined).length,
        new_rows: trs.filter((tr) => tr.dataset.mark === undefined).map((tr) => [...tr.cells].map((td) => td.textContent.trim())),
        top: document.querySelector('#events-table tbody tr[data-mark="20"]').getBoundingClientRect().top,
        announced: document.getElementById('events-news').textContent,
      };
    });
    await shot(page, 'events-live');
    return {
      ...observed,
      focused: await focusedName(page),
      focus_visible: await focusVisible(page),
      polls: requests.slice(polled),
      arrived_at: arrived,
    };
  });
  await step('hidden', async () => {
    // Headless Chromium keeps every tab visible: the page is told it is hidden as a browser
    // would (visibilityState and a visibilitychange event), then visible again.
    const setVisibility = (state) =>
      page.evaluate((state) => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
        document.dispatchEvent(new Event('visibilitychange'));
      }, state);
    await setVisibility('hidden');
    await page.waitForTimeout(600); // a poll under way ends
    const from = requests.length;
    await page.waitForTimeout(2000);
    const whileHidden = requests.length - from;
    const shown = requests.length;
    await setVisibility('visible');
    await page.waitForTimeout(250); // less than a poll's interval: the poll is the one on showing
    return { requests_while_hidden: whileHidden, requests_on_showing: requests.length - shown };
  });
  // The last poll's body may still be on its way (then unread: items null).
  await step('all_requests', () => requests.slice());
}

async function eventsScenario(page, context) {
  const organization = input.organization;
  await step('sign_in', () => signIn(page, input.token));
  await step('open_organization', async () => {
    await page.getByRole('link', { name: 'By organization' }).click();
    await page.locator('#org-form').getByLabel('Organization ID').fill(organization);
    await page.keyboard.press('Enter');
    await page.locator('#org-heading').filter({ hasText: organization }).waitFor({ timeout: TIMEOUT });
    // When a failed row first appears, as the page saw it.
    await page.evaluate(() => {
      window.__failureSeenAt = null;
      const tbody = document.querySelector('#org-table tbody');
      new MutationObserver(() => {
        if (window.__failureSeenAt === null && tbody.querySelector('tr.failure')) window.__failureSeenAt = Date.now();
      }).observe(tbody, { childList: true });
    });
    return { hash: new URL(page.url()).hash };
  });
  // The logins happen in another tab, as a user elsewhere would; each ends at the client's
  // redirect URI, which is not served here: reaching it is the end of the login.
  const login = async (url) => {
    const other = await context.newPage();
    let done;
    const reached = new Promise((resolve) => { done = resolve; });
    await other.route(`${input.stop_prefix}**`, (route) => {
      done({ at: Date.now(), url: route.request().url() });
      route.fulfill({ status: 200, contentType: 'text/plain', body: 'client' });
    });
    const started = Date.now();
    await other.goto(url).catch(() => {});
    const end = await Promise.race([reached, new Promise((_, reject) => setTimeout(() => reject(new Error('login did not end')), TIMEOUT))]);
    await other.close();
    return { ...end, started };
  };
  const rowsOf = (table) =>
    page.locator(`#${table} tbody tr`).evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent.trim())));
  if (input.signal) {
    // The test records the events itself once the view is open: a failure, then a success.
    await step('failed_login', async () => {
      // The earlier login is on screen: the page now follows the log for newer events.
      await page.locator('#org-table tbody tr').first().waitFor({ timeout: TIMEOUT });
      process.stdout.write('READY\n');
      await page.locator('#org-table tbody tr.failure').first().waitFor({ timeout: TIMEOUT });
      await page.locator('#org-table tbody tr').nth(2).waitFor({ timeout: TIMEOUT });
      await shot(page, 'organization');
      return {
        seen_at: await page.evaluate(() => window.__failureSeenAt),
        rows: await rowsOf('org-table'),
        summary: await text(page.locator('#org-summary')),
      };
    });
  } else {
    await step('success_login', async () => {
      const end = await login(input.success_url);
      await page.locator('#org-table tbody tr').first().waitFor({ timeout: TIMEOUT });
      return { ended_at: end.url.replace(/code=[^&]+/, 'code=…') };
    });
    await step('failed_login', async () => {
      const end = await login(input.failure_url);
      await page.locator('#org-table tbody tr.failure').first().waitFor({ timeout: TIMEOUT });
      const seenAt = await page.evaluate(() => window.__failureSeenAt);
      await shot(page, 'organization');
      return {
        ended_at: end.url,
        seen_at: seenAt,
        // Negative when the console showed it before the failed user's browser reached the
        // client's error page.
        visible_after_ms: seenAt - end.at,
        visible_after_start_ms: seenAt - end.started,
        rows: await rowsOf('org-table'),
        summary: await text(page.locator('#org-summary')),
      };
    });
  }
  await step('details', async () => {
    await page.locator('#org-table tbody tr.failure').first().getByRole('button').click();
    await page.locator('#event-dialog').waitFor({ state: 'visible' });
    const facts = await page.locator('#event-facts').evaluate((dl) => {
      const out = {};
      for (const dt of dl.querySelectorAll('dt')) out[dt.textContent] = dt.nextElementSibling.textContent;
      return out;
    });
    await shot(page, 'event-details');
    await page.keyboard.press('Escape');
    await page.locator('#event-dialog').waitFor({ state: 'hidden' });
    return { title: await text(page.locator('#event-title')), facts };
  });
  await step('event_log', async () => {
    await page.getByRole('link', { name: 'Event log' }).click();
    await page.locator('#events-filter').getByLabel('Organization', { exact: true }).fill(organization);
    await page.locator('#events-filter').getByLabel('Outcome').selectOption('failure');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.locator('#events-table tbody tr.failure').first().waitFor({ timeout: TIMEOUT });
    await page.waitForTimeout(600); // one more refresh: only what the filters keep stays
    await shot(page, 'events');
    return { rows: await rowsOf('events-table') };
  });
  await step('export', async () => {
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: TIMEOUT }),
      page.getByRole('button', { name: 'Export NDJSON' }).click(),
    ]);
    const file = await download.path();
    const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
    return { file_name: download.suggestedFilename(), url_scheme: new URL(download.url()).protocol, events: lines.map((l) => JSON.parse(l)) };
  });
}

// ---------------------------------------------------------------------------------------

try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 860 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
  // Collected before any of the page's own scripts run.
  await context.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      const what = `${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`;
      window.__violations.push(what);
      console.error(`securitypolicyviolation: ${what}`); // survives a navigation, in console_errors
    });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  watch(page);
  const scenarios = { write: writeScenario, read: readScenario, hostile: hostileScenario, keyboard: keyboardScenario, events: eventsScenario, live: liveScenario, jobs: jobsScenario };
  const scenario = scenarios[input.scenario];
  if (!scenario) throw new Error(`unknown scenario ${input.scenario}`);
  try {
    await scenario(page, context);
  } finally {
    result.violations = await page.evaluate(() => window.__violations ?? []).catch(() => ['unreadable']);
    if (!result.storage) result.storage = await storage(page).catch(() => null);
  }
  result.ok = true;
} catch (error) {
  result.error = String(error?.message ?? error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
