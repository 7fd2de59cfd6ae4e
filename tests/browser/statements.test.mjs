// The statement explorer (/ui/statements) as an administrator, and as an
// analyst who may not read statements.

import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {
  env, launch, openPage, apiJson, basicHeader, screenshot, assertNoHorizontalScroll, tabTo, signInBasic, statements,
  PHONE,
} from './lib.mjs';

const admin = basicHeader(env.admin);
const PASSED = 'http://adlnet.gov/expapi/verbs/passed';
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

async function signedIn(viewport) {
  const opened = await openPage(browser, {viewport});
  await opened.page.goto(`${env.url}/ui/statements`);
  await signInBasic(opened.page, env.admin);
  await opened.page.locator('#results[data-request]').waitFor();
  return opened;
}

const shownIds = (page) => page.locator('#statements-table [data-id]').evaluateAll((buttons) => buttons.map((b) => b.dataset.id));

test('pages through the statements with the more link, as the API does', async () => {
  const {context, page, problems} = await signedIn();
  const first = await apiJson('/xapi/statements?limit=25', admin, {xapi: true});
  assert.equal(await page.locator('#results').getAttribute('data-request'), '/xapi/statements?limit=25');
  assert.deepEqual(await shownIds(page), first.statements.map((s) => s.id));
  assert.ok(first.more, 'the store holds more than one page');
  const second = await apiJson(first.more, admin, {xapi: true});
  await page.getByRole('button', {name: 'Next page'}).click();
  await page.locator(`#results[data-request="${first.more}"]`).waitFor();
  assert.match(await page.locator('#page-info').textContent(), /^Page 2: 25 statements/);
  assert.deepEqual(await shownIds(page), second.statements.map((s) => s.id));
  const third = await apiJson(second.more, admin, {xapi: true});
  await page.getByRole('button', {name: 'Next page'}).click();
  await page.locator(`#results[data-request="${second.more}"]`).waitFor();
  assert.deepEqual(await shownIds(page), third.statements.map((s) => s.id));
  await page.getByRole('button', {name: 'First page'}).click();
  await page.locator('#results[data-request="/xapi/statements?limit=25"]').waitFor();
  assert.deepEqual(await shownIds(page), first.statements.map((s) => s.id));
  assert.deepEqual(problems, []);
  await context.close();
});

test("shows a statement's JSON as the API stores it", async () => {
  const {context, page, problems} = await signedIn();
  const ids = await shownIds(page);
  const id = ids[3];
  await page.getByRole('button', {name: `Show the JSON of statement ${id}`}).click();
  await page.locator('#detail').waitFor();
  assert.equal(await page.locator('#detail-title').textContent(), `Statement ${id}`);
  // Focus moves to the statement for keyboard and screen-reader users.
  assert.equal(await page.evaluate(() => document.activeElement.id), 'detail-title');
  const shown = JSON.parse(await page.locator('#json').textContent());
  const stored = await apiJson(`/xapi/statements?statementId=${id}`, admin, {xapi: true});
  assert.deepEqual(shown, stored);
  await screenshot(page, 'statements');
  assert.deepEqual(problems, []);
  await context.close();
});

test('filters as the xAPI statements query does', async () => {
  const {context, page, problems} = await signedIn();
  const passed = statements().filter((s) => s.verb.id === PASSED && s.actor.account);
  const account = passed[0].actor.account.name;
  const activity = passed[0].object.id;
  const agent = JSON.stringify({account: {homePage: 'https://learninghub.nhs.uk', name: account}});
  const cases = [
    {form: {agent: account, limit: '5'}, query: {agent, limit: '5'}},
    {form: {verb: PASSED, limit: '10', ascending: true}, query: {verb: PASSED, limit: '10', ascending: 'true'}},
    {form: {activity, related_activities: true, limit: '50'}, query: {activity, limit: '50', related_activities: 'true'}},
    {form: {agent: account, related_agents: true, since: '2026-01-01T00:00:00Z', until: '2030-01-01T00:00:00Z'},
      query: {agent, since: '2026-01-01T00:00:00Z', until: '2030-01-01T00:00:00Z', limit: '25', related_agents: 'true'}},
    {form: {registration: passed[0].context.registration}, query: {registration: passed[0].context.registration, limit: '25'}},
  ];
  for (const {form, query} of cases) {
    for (const name of ['agent', 'verb', 'activity', 'registration', 'since', 'until']) {
      await page.locator(`#${name}`).fill(form[name] ?? '');
    }
    await page.locator('#limit').fill(form.limit ?? '25');
    for (const name of ['related_activities', 'related_agents', 'ascending']) {
      await page.locator(`#${name}`).setChecked(Boolean(form[name]));
    }
    await page.getByRole('button', {name: 'Search'}).click();
    const ordered = new URLSearchParams();
    for (const name of ['agent', 'verb', 'activity', 'registration', 'since', 'until', 'limit', 'related_activities', 'related_agents', 'ascending']) {
      if (query[name]) ordered.set(name, query[name]);
    }
    const path = `/xapi/statements?${ordered}`;
    await page.locator(`#results[data-request="${path}"]`).waitFor();
    const answer = await apiJson(path, admin, {xapi: true});
    assert.ok(answer.statements.length > 0, path);
    assert.deepEqual(await shownIds(page), answer.statements.map((s) => s.id), path);
  }
  assert.deepEqual(problems, []);
  await context.close();
});

test('a credential without statement access gets a message, no statements', async () => {
  const {context, page, problems} = await openPage(browser);
  await page.goto(`${env.url}/ui/statements`);
  await signInBasic(page, env.analyst);
  await page.locator('#error').getByText('You do not have access').waitFor();
  assert.ok(await page.locator('#results').isHidden());
  assert.equal(await page.locator('#statements-table').count(), 0);
  assert.deepEqual(problems, []);
  await context.close();
});

test('keyboard and phone', async () => {
  const {context, page, problems} = await signedIn(PHONE);
  for (const control of ['#agent', '#verb', '#activity', '#registration', '#since', '#until', '#limit', '#related_activities', '#related_agents', '#ascending']) {
    await tabTo(page, control, 60);
  }
  // Tick "oldest first" with the space bar and search with Enter.
  await tabTo(page, '#ascending', 60);
  await page.keyboard.press('Space');
  await page.locator('#limit').press('Enter');
  await page.locator('#results[data-request="/xapi/statements?limit=25&ascending=true"]').waitFor();
  const id = (await shownIds(page))[0];
  await tabTo(page, `[data-id="${id}"]`, 80);
  await page.keyboard.press('Enter');
  await page.locator('#detail').waitFor();
  assert.equal(JSON.parse(await page.locator('#json').textContent()).id, id);
  await assertNoHorizontalScroll(page, 'the explorer on a phone');
  await screenshot(page, 'statements-phone');
  assert.deepEqual(problems, []);
  await context.close();
});
