// The citizen's page in headless Chromium (Debian's, via playwright-core), as a citizen
// meets it: Kari's list, a Bergen visit cancelled by keyboard alone and its answer arriving
// live, the detail view, the calendar file, a parent switching to Lukas (14), a provider
// failing, a 375 px wide screen. axe-core checks each view. Prints what it saw as JSON:
// every request the page made (none may leave the BFF) and every GraphQL document it sent.
// Usage: node citizen.mjs <BFF url> <sandbox url> <output dir>
//        node citizen.mjs --production <BFF url> <bearer token>: the page as a host page
//        embeds it, with the token in sessionStorage; prints its rows and requests.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const production = process.argv[2] === '--production';
const [bff, sandbox, output] = process.argv.slice(production ? 3 : 2);
const origin = new URL(bff).host;
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const seen = { elsewhere: [], errors: [], graphql: [], subscribes: [], axe: {}, views: {} };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});

/** axe-core on the page as it stands (evaluated over CDP, so the page's CSP stays strict). */
async function audit(page, view) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(axeSource);
  const result = await page.evaluate(async () => (await window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })).violations);
  seen.axe[view] = result.filter((v) => ['serious', 'critical'].includes(v.impact))
    .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
}

async function view(page) {
  return page.evaluate(() => ({
    rows: Array.from(document.querySelectorAll('.row')).map((row) => ({
      title: row.querySelector('h3').innerText,
      source: row.querySelector('.source').innerText.replace(/^Fra /, ''),
      status: row.querySelector('.status').innerText,
      cancellable: Boolean(row.querySelector('button.danger')),
    })),
    days: Array.from(document.querySelectorAll('.day h2')).map((h) => h.innerText),
    notices: Array.from(document.querySelectorAll('.notice')).map((n) => n.innerText),
    subjects: Array.from(document.querySelectorAll('#subject option')).map((o) => o.innerText),
    count: document.querySelector('.count')?.innerText ?? null,
  }));
}

async function signIn(page, handle, name) {
  await page.locator('#login').selectOption(handle);
  await page.waitForFunction((who) => document.querySelector('.who')?.innerText.includes(who), name, { timeout: 30000 });
  await settled(page);
}

async function settled(page) {
  await page.waitForFunction(() => document.querySelector('section[aria-busy="false"]') && !document.querySelector('.loading'),
    null, { timeout: 30000 });
}

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  if (production) await page.addInitScript((token) => sessionStorage.setItem('timeavtaler.accessToken', token), sandbox);
  page.on('request', (request) => {
    const target = new URL(request.url());
    if (['http:', 'https:', 'ws:', 'wss:'].includes(target.protocol) && target.host !== origin) seen.elsewhere.push(request.url());
    if (target.pathname === '/graphql' && request.method() === 'POST') {
      const body = JSON.parse(request.postData() || '{}');
      seen.graphql.push({ documentId: body.documentId || null, query: body.query ?? null });
    }
  });
  page.on('websocket', (socket) => socket.on('framesent', ({ payload }) => {
    const message = JSON.parse(String(payload));
    if (message.type === 'subscribe') seen.subscribes.push({ documentId: message.payload.documentId || null, query: message.payload.query ?? null });
  }));
  page.on('pageerror', (error) => seen.errors.push(String(error)));
  page.on('console', (message) => { if (message.type() === 'error') seen.errors.push(message.text()); });

  // Kari's list.
  await page.goto(bff + '/', { waitUntil: 'networkidle' });
  await page.waitForSelector('.row', { timeout: 30000 });
  await settled(page);
  seen.views.kari = await view(page);
  if (production) {
    seen.picker = await page.locator('#login').count();
    console.log(JSON.stringify(seen));
    process.exit(0);
  }
  await audit(page, 'list');
  await page.screenshot({ path: `${output}/citizen-desktop.png`, fullPage: true });
  await page.setViewportSize({ width: 1000, height: 760 });
  await page.screenshot({ path: `${output}/citizen.png` });
  await page.setViewportSize({ width: 1280, height: 900 });

  // Cancel a Bergen visit with the keyboard alone: Tab to its button, Enter, type, Tab, Enter.
  const target = page.locator('.row', { has: page.locator('.source', { hasText: 'Bergen' }) })
    .filter({ has: page.locator('button.danger') }).first();
  const title = await target.locator('h3').innerText();
  const id = await target.getAttribute('data-row');
  const button = target.locator('button.danger');
  await page.locator('#subject').focus();
  for (let i = 0; i < 200 && !(await button.evaluate((b) => b === document.activeElement)); i += 1) await page.keyboard.press('Tab');
  seen.reachedByTab = await button.evaluate((b) => b === document.activeElement);
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog[open]');
  await page.keyboard.press('Escape');  // changed one's mind: back where one was
  await page.waitForSelector('dialog[open]', { state: 'detached', timeout: 5000 }).catch(() => {});
  seen.escapeReturnsFocus = await page.evaluate((id) => document.activeElement?.closest('[data-row]')?.dataset.row === id
    && document.activeElement.classList.contains('danger') && !document.querySelector('dialog[open]'), id);
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog[open]');
  await audit(page, 'dialog');
  await page.keyboard.type('Jeg er bortreist.');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  seen.confirmFocused = await page.evaluate(() => document.activeElement?.id);
  await page.keyboard.press('Enter');
  const row = page.locator(`.row[data-row="${id}"]`);
  await row.locator('.cancel-state', { hasText: 'Venter på svar' }).waitFor({ timeout: 15000 });
  seen.pending = await row.locator('.cancel-state').innerText();
  await row.locator('.cancel-state', { hasText: /Avbestilt|Ikke godtatt/ }).waitFor({ timeout: 30000 });
  seen.decided = await row.locator('.cancel-state').innerText();
  seen.cancelledTitle = title;

  // The municipality says no to the next one: the answer, with its reason, arrives live.
  await fetch(`${sandbox}/_admin/municipal/bergen`, { method: 'PUT', headers: { 'Content-Type': 'application/json' },
                                                     body: JSON.stringify({ rule: 'reject', delay_ms: 300 }) });
  const next = page.locator('.row', { has: page.locator('.source', { hasText: 'Bergen' }) })
    .filter({ has: page.locator('button.danger') }).first();
  const nextId = await next.getAttribute('data-row');
  await next.locator('button.danger').click();
  await page.locator('#confirm-yes').click();
  await page.locator(`.row[data-row="${nextId}"] .cancel-state`, { hasText: 'Ikke godtatt' }).waitFor({ timeout: 30000 });
  seen.rejected = await page.locator(`.row[data-row="${nextId}"] .cancel-state`).innerText();
  seen.reloads = seen.graphql.length;

  // The detail view of one appointment, and back.
  await page.locator('.row button.link').first().click();
  await page.waitForSelector('#detail-title');
  seen.detail = await page.evaluate(() => ({ title: document.querySelector('#detail-title').innerText,
    facts: Array.from(document.querySelectorAll('.detail dt')).map((d) => d.innerText) }));
  await audit(page, 'detail');
  await page.getByRole('button', { name: /Tilbake/ }).click();
  await page.waitForSelector('.row');

  // The calendar file.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Legg til i kalender' }).click()]);
  seen.download = download.suggestedFilename();

  // Past appointments.
  await signIn(page, 'gp_pilot', 'Sara Berg');
  await page.locator('#past').check();
  await page.waitForFunction(() => document.querySelector('#past').checked && document.querySelector('section[aria-busy="false"]'));
  await settled(page);
  seen.views.pastGp = await view(page);

  // A parent, then Lukas (14): no hospital rows.
  await signIn(page, 'parent', 'Nora Dahl');
  seen.views.parent = await view(page);
  const lukas = await page.locator('#subject option', { hasText: 'Lukas' }).getAttribute('value');
  await page.locator('#subject').selectOption(lukas);
  await page.waitForFunction(() => document.querySelector('#subject').selectedOptions[0]?.innerText.includes('Lukas'));
  await settled(page);
  seen.views.lukas = await view(page);
  await audit(page, 'representation');

  // A provider failing: the notice names it.
  await fetch(`${sandbox}/_admin/faults/helse-nord`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ status: 503 }) });
  await signIn(page, 'tromso', 'Ingrid Johansen');
  await page.waitForSelector('.notice', { timeout: 30000 });
  seen.views.failing = await view(page);
  await audit(page, 'notice');

  // 375 px wide.
  await signIn(page, 'asane', 'Kari Nordmann');
  await page.waitForSelector('.row');
  await page.setViewportSize({ width: 375, height: 812 });
  seen.mobileOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await audit(page, 'mobile');
  await page.screenshot({ path: `${output}/citizen-375.png`, fullPage: true });
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
