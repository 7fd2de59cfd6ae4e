// The landing page and what every page shares: the security policy holds
// (nothing is refused by it), landmarks, language, labels and navigation.

import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {env, launch, openPage, screenshot, assertNoHorizontalScroll, tabTo, PHONE} from './lib.mjs';

const PAGES = [
  ['/ui/', 'Learning Hub learning records'],
  ['/ui/uptake', 'Uptake dashboard'],
  ['/ui/learning', 'My learning'],
  ['/ui/statements', 'Statement explorer'],
];

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('every page loads under its security policy with its landmarks and labels', async () => {
  for (const viewport of [undefined, PHONE]) {
    const {context, page, problems} = await openPage(browser, {viewport});
    for (const [path, heading] of PAGES) {
      const response = await page.goto(`${env.url}${path}`);
      assert.equal(response.status(), 200, path);
      assert.match(response.headers()['content-security-policy'], /default-src 'self'/);
      await page.getByRole('heading', {level: 1, name: heading}).waitFor();
      assert.equal(await page.locator('html').getAttribute('lang'), 'en-GB');
      assert.equal(await page.getByRole('main').count(), 1, path);
      assert.equal(await page.getByRole('navigation', {name: 'Pages'}).count(), 1, path);
      // Every visible form control has a label.
      const unlabelled = await page.locator('input, select, textarea').evaluateAll((controls) =>
        controls.filter((c) => c.type !== 'hidden' && c.labels.length === 0).map((c) => c.id || c.name),
      );
      assert.deepEqual(unlabelled, [], `${path}: controls without a label`);
      await assertNoHorizontalScroll(page, `${path} at ${viewport ? 'phone' : 'laptop'} size`);
    }
    // Nothing was refused by the policy, and no script failed.
    assert.deepEqual(problems, []);
    await context.close();
  }
});

test('the landing page leads to each page, by keyboard too', async () => {
  const {context, page, problems} = await openPage(browser);
  await page.goto(`${env.url}/ui/`);
  await screenshot(page, 'landing');
  // The skip link comes first and moves to the content.
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to main content');
  for (const [path, heading] of PAGES.slice(1)) {
    await page.goto(`${env.url}/ui/`);
    await tabTo(page, `main a[href="${path}"]`);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', {level: 1, name: heading}).waitFor();
    assert.equal(new URL(page.url()).pathname, path);
    assert.equal(await page.locator(`nav a[href="${path}"]`).getAttribute('aria-current'), 'page');
  }
  assert.deepEqual(problems, []);
  await context.close();
});

test('/ui redirects to the landing page', async () => {
  const {context, page, problems} = await openPage(browser);
  await page.goto(`${env.url}/ui`);
  assert.equal(new URL(page.url()).pathname, '/ui/');
  assert.deepEqual(problems, []);
  await context.close();
});
