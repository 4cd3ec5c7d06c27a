// Opens the BFF's GraphiQL in headless Chromium (Debian's, via playwright-core), runs the
// first example query, and prints what it saw as JSON: the result text, any request to a
// host other than the BFF's (there must be none: no CDN), and browser errors.
// Usage: node graphiql.mjs <page url> <screenshot path>
import { chromium } from 'playwright-core';

const [url, shot] = process.argv.slice(2);
const origin = new URL(url).host;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const elsewhere = [];
  const errors = [];
  page.on('request', (request) => {
    const target = new URL(request.url());
    if (['http:', 'https:', 'ws:', 'wss:'].includes(target.protocol) && target.host !== origin) elsewhere.push(request.url());
  });
  const answers = [];
  page.on('response', async (response) => {
    if (response.request().method() === 'POST' && new URL(response.url()).pathname === '/graphql') {
      try { answers.push(await response.json()); } catch (error) { errors.push(String(error)); }
    }
  });
  page.on('pageerror', (error) => errors.push(String(error)));
  page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
  await page.goto(url, { waitUntil: 'networkidle' });
  await page.waitForSelector('.graphiql-execute-button', { timeout: 30000 });
  await page.click('.graphiql-execute-button');
  await page.waitForFunction(() => (document.querySelector('.result-window') || {}).innerText?.includes('totalCount'),
    null, { timeout: 30000 });
  const result = await page.evaluate(() => document.querySelector('.result-window').innerText);
  const tabs = await page.evaluate(() => Array.from(document.querySelectorAll('.graphiql-tab')).map((t) => t.innerText));
  await page.screenshot({ path: shot });
  console.log(JSON.stringify({ result, tabs, elsewhere, errors, answers }));
} finally {
  await browser.close();
}
