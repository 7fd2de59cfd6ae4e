// Shared by the browser tests: the environment run.sh sets, the browser,
// API calls made by the test itself (to compare with what the pages show),
// learner tokens, screenshots and page checks.

import {createSign} from 'node:crypto';
import {mkdirSync, readFileSync, copyFileSync} from 'node:fs';
import {join, dirname} from 'node:path';
import {fileURLToPath} from 'node:url';
import assert from 'node:assert/strict';
import {chromium} from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(here, '..', '..');

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the browser tests with tests/browser/run.sh`);
  return value;
}

export const env = {
  url: required('LRS_URL'),
  admin: {key: required('LRS_ADMIN_KEY'), secret: required('LRS_ADMIN_SECRET')},
  analyst: {key: required('LRS_ANALYST_KEY'), secret: required('LRS_ANALYST_SECRET')},
  analystOrg: required('LRS_ANALYST_ORG'),
  otherOrg: required('LRS_OTHER_ORG'),
  jwtKey: required('LRS_JWT_PRIVATE_KEY'),
  jwtIssuer: required('LRS_JWT_ISSUER'),
  jwtAudience: required('LRS_JWT_AUDIENCE'),
  dataDir: required('LRS_BROWSER_DATA'),
  artifacts: process.env.LRS_BROWSER_ARTIFACTS || join(ROOT, 'target', 'browser-artifacts'),
  chromium: process.env.CHROMIUM || '/usr/bin/chromium',
};

/** Generous bound for anything a page waits on. */
export const TIMEOUT = 15_000;

export const DESKTOP = {width: 1366, height: 768};
export const PHONE = {width: 390, height: 844};

export async function launch() {
  return chromium.launch({
    executablePath: env.chromium,
    headless: true,
    args: ['--no-sandbox', '--lang=en-GB', '--disable-dev-shm-usage', '--disable-gpu', '--font-render-hinting=none'],
  });
}

/**
 * A fresh context (its own sessionStorage) and page that records console
 * errors, page errors and Content-Security-Policy violations.
 */
export async function openPage(browser, {viewport = DESKTOP, acceptDownloads = false} = {}) {
  const context = await browser.newContext({viewport, acceptDownloads, locale: 'en-GB', timezoneId: 'Europe/London'});
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // A refused API call is logged by the browser as a failed resource; the
    // pages show such refusals themselves, so only other errors count.
    if (message.type() === 'error' && !/Failed to load resource: the server responded with a status of (401|403)/.test(message.text())) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  return {context, page, problems};
}

export function basicHeader({key, secret}) {
  return `Basic ${Buffer.from(`${key}:${secret}`).toString('base64')}`;
}

/** GET from the LRS as the test (not the page) sees it. */
export async function apiGet(path, authorization, {xapi = false, accept = 'application/json'} = {}) {
  const headers = {Authorization: authorization, Accept: accept};
  if (xapi) headers['X-Experience-API-Version'] = '2.0.0';
  const response = await fetch(new URL(path, env.url), {headers});
  const text = await response.text();
  let body = text;
  if ((response.headers.get('content-type') || '').includes('json')) body = JSON.parse(text);
  return {status: response.status, body};
}

export async function apiJson(path, authorization, options) {
  const answer = await apiGet(path, authorization, options);
  assert.equal(answer.status, 200, `GET ${path}: ${JSON.stringify(answer.body)}`);
  return answer.body;
}

function base64url(data) {
  return Buffer.from(data).toString('base64url');
}

/** An RS256 token from the test identity provider for a Learning Hub account. */
export function learnerToken(account, lifetimeSeconds = 3600) {
  const now = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({alg: 'RS256', typ: 'JWT'}));
  const claims = base64url(
    JSON.stringify({sub: account, iss: env.jwtIssuer, aud: env.jwtAudience, iat: now, nbf: now - 5, exp: now + lifetimeSeconds}),
  );
  const signer = createSign('RSA-SHA256');
  signer.update(`${header}.${claims}`);
  const signature = signer.sign(readFileSync(env.jwtKey)).toString('base64url');
  return `${header}.${claims}.${signature}`;
}

/**
 * Saves a full-page screenshot under target/browser-artifacts; with
 * LRS_UPDATE_SCREENSHOTS=1 also copies it to `copyTo` (the README's
 * pictures), so an ordinary test run leaves the checkout unchanged.
 */
export async function screenshot(page, name, {copyTo} = {}) {
  mkdirSync(env.artifacts, {recursive: true});
  const path = join(env.artifacts, `${name}.png`);
  await page.screenshot({path, fullPage: true});
  if (copyTo && process.env.LRS_UPDATE_SCREENSHOTS === '1') {
    mkdirSync(dirname(copyTo), {recursive: true});
    copyFileSync(path, copyTo);
  }
  return path;
}

/** "1,234" → 1234. */
export const number = (text) => Number(String(text).replace(/[,\s]/g, ''));

/** The text of every cell of a table, by row (header row excluded). */
export async function tableRows(page, selector) {
  return page.locator(`${selector} tbody tr`).evaluateAll((rows) =>
    rows.map((row) => [...row.children].map((cell) => cell.textContent.trim())),
  );
}

/** The page fits its width: nothing scrolls sideways. */
export async function assertNoHorizontalScroll(page, what) {
  const {scrollWidth, clientWidth} = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
  }));
  assert.ok(scrollWidth <= clientWidth, `${what}: page is ${scrollWidth}px wide in a ${clientWidth}px viewport`);
}

/**
 * Presses Tab from the top of the page until `selector` has focus and checks
 * the focus is visible (an outline or a focus ring).
 */
export async function tabTo(page, selector, most = 40) {
  await page.evaluate(() => {
    document.activeElement?.blur();
    window.scrollTo(0, 0);
  });
  const target = page.locator(selector);
  for (let i = 0; i < most; i += 1) {
    await page.keyboard.press('Tab');
    if (await target.evaluate((element) => element === document.activeElement)) {
      const ring = await target.evaluate((element) => {
        const style = getComputedStyle(element);
        return {outline: style.outlineStyle, shadow: style.boxShadow};
      });
      assert.ok(ring.shadow !== 'none' || ring.outline !== 'none', `${selector} has no visible focus: ${JSON.stringify(ring)}`);
      return i + 1;
    }
  }
  assert.fail(`${selector} was not reached with ${most} presses of Tab`);
}

/** Signs in on a page with a key and secret. */
export async function signInBasic(page, credential) {
  await page.getByLabel('Key', {exact: true}).fill(credential.key);
  await page.getByLabel('Secret', {exact: true}).fill(credential.secret);
  await page.getByRole('button', {name: 'Sign in'}).click();
}

export function readData(name) {
  return readFileSync(join(env.dataDir, name), 'utf8');
}

/** organisations.csv as [{code, name, parent}] (simple CSV with quoted names). */
export function organisations() {
  const rows = [];
  for (const line of readData('organisations.csv').trim().split('\n').slice(1)) {
    const cells = [];
    let current = '';
    let quoted = false;
    for (let i = 0; i < line.length; i += 1) {
      const c = line[i];
      if (c === '"' && quoted && line[i + 1] === '"') {
        current += '"';
        i += 1;
      } else if (c === '"') quoted = !quoted;
      else if (c === ',' && !quoted) {
        cells.push(current);
        current = '';
      } else current += c;
    }
    cells.push(current);
    rows.push({code: cells[0], name: cells[1], parent: cells[2] || null});
  }
  return rows;
}

/** The statements the server was filled with. */
export function statements() {
  return readData('statements.ndjson')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line));
}
