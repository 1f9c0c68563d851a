// browser.mjs: drives Debian's Chromium (via playwright-core) through ssobridge's hosted
// home-realm page, keyboard only, as a person would.
//
//   node browser.mjs '<json>'
//   input: {start_url, stop_prefix, email, javascript (default true), screenshot (path, optional),
//           chromium (default $CHROMIUM or /usr/bin/chromium)}
//   It opens start_url, checks the form (label, autocomplete, focus), types `email`, presses
//   Enter, and waits until the browser is sent to a URL starting with stop_prefix (the
//   client's redirect_uri, which need not be reachable) or the page shows an
//   error (role=alert).
//   stdout, one JSON line: {ok, reached, final_url, error_text, form: {...}}; exit 0 unless
//   the script itself crashes.
import { chromium } from 'playwright-core';

const input = JSON.parse(process.argv[2] ?? '{}');
const executablePath = input.chromium ?? process.env.CHROMIUM ?? '/usr/bin/chromium';

// The machine has no internet: keep Chromium from phoning home.
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-default-apps', '--disable-extensions',
  ],
});
const result = { ok: false, reached: false, final_url: null, error_text: null, form: {} };
try {
  const context = await browser.newContext({ javaScriptEnabled: input.javascript !== false });
  const page = await context.newPage();
  // The client's redirect_uri is not reachable from here (no network); seeing the browser
  // ask for it is what matters. Redirect hops raise 'request' events too.
  let reachedUrl = null;
  let reached;
  const reachedPromise = new Promise((resolve) => { reached = resolve; });
  page.on('request', (request) => {
    if (request.url().startsWith(input.stop_prefix) && !reachedUrl) {
      reachedUrl = request.url();
      reached('reached');
    }
  });
  await page.goto(input.start_url);
  const email = page.locator('input[type=email]');
  const id = await email.getAttribute('id');
  result.form = {
    title: await page.title(),
    heading: (await page.locator('h1').first().textContent())?.trim(),
    label: id ? (await page.locator(`label[for="${id}"]`).textContent())?.trim() : null,
    autocomplete: await email.getAttribute('autocomplete'),
    required: (await email.getAttribute('required')) !== null,
  };
  // Keyboard only: the field should have focus already (autofocus); else tab to it.
  for (let i = 0; i < 5 && !(await email.evaluate((el) => el === document.activeElement)); i++) {
    await page.keyboard.press('Tab');
  }
  result.form.focused = await email.evaluate((el) => el === document.activeElement);
  if (input.screenshot) await page.screenshot({ path: input.screenshot, fullPage: true });
  await page.keyboard.type(input.email);
  await page.keyboard.press('Enter');
  const outcome = await Promise.race([
    reachedPromise,
    page.locator('[role=alert]').waitFor({ timeout: 20000 }).then(() => 'alert'),
  ]);
  result.final_url = reachedUrl ?? page.url();
  result.reached = outcome === 'reached';
  if (outcome === 'alert') {
    result.error_text = (await page.locator('[role=alert]').textContent())?.trim();
    if (input.screenshot) await page.screenshot({ path: input.screenshot.replace(/\.png$/, '-error.png'), fullPage: true });
  }
  result.ok = true;
} catch (error) {
  result.error_text = String(error?.message ?? error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
