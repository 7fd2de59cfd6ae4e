// "My learning" (/ui/learning) as learners signed in with the identity
// provider's token.

import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {join} from 'node:path';
import {
  env, launch, openPage, apiJson, apiGet, basicHeader, screenshot, assertNoHorizontalScroll, tabTo, learnerToken,
  statements, PHONE, ROOT,
} from './lib.mjs';

const admin = basicHeader(env.admin);
let browser;
/** Two learners with records; the first has achieved the most competencies. */
let learners;

before(async () => {
  browser = await launch();
  const counts = new Map();
  for (const s of statements()) {
    const name = s.actor.account?.name;
    if (name) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const busiest = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 12).map(([name]) => name);
  const scored = [];
  for (const name of busiest) {
    const {competencies} = await apiJson(`/analytics/learners/${name}/competencies`, admin);
    const {activities} = await apiJson(`/analytics/learners/${name}/transcript`, admin);
    scored.push({name, achieved: competencies.filter((c) => c.status === 'achieved').length, activities: activities.length});
  }
  scored.sort((a, b) => b.achieved - a.achieved || b.activities - a.activities || a.name.localeCompare(b.name));
  learners = scored.map((s) => s.name);
  assert.ok(scored[0].achieved > 0, 'a generated learner has achieved a competency');
});
after(async () => {
  await browser?.close();
});

async function signedIn(account, viewport) {
  const opened = await openPage(browser, {viewport});
  await opened.page.goto(`${env.url}/ui/learning`);
  await opened.page.getByLabel('Token', {exact: true}).fill(learnerToken(account));
  await opened.page.getByRole('button', {name: 'Sign in'}).click();
  await opened.page.locator('#app[data-loaded="true"]').waitFor();
  return opened;
}

async function shownActivities(page) {
  return page.locator('#transcript-table tbody tr').evaluateAll((rows) =>
    rows.map((row) => ({
      activity: row.querySelector('[data-activity]').dataset.activity,
      cells: [...row.children].map((cell) => cell.textContent.trim()),
      times: [...row.querySelectorAll('time')].map((t) => t.getAttribute('datetime')),
    })),
  );
}

const STATUS = {passed: 'Passed', completed: 'Completed', failed: 'Failed', in_progress: 'In progress'};

test('the transcript and competency profile equal the API, evidence included', async () => {
  const [account] = learners;
  const {context, page, problems} = await signedIn(account);
  const bearer = `Bearer ${learnerToken(account)}`;
  const transcript = await apiJson('/analytics/learners/me/transcript', bearer);
  const profile = await apiJson('/analytics/learners/me/competencies', bearer);
  assert.match(await page.locator('#who').textContent(), new RegExp(`Learning Hub account ${account}$`));

  const shown = await shownActivities(page);
  assert.equal(shown.length, transcript.activities.length);
  shown.forEach((row, index) => {
    const entry = transcript.activities[index];
    assert.equal(row.activity, entry.activity);
    const [activity, status, score, , , , platform] = row.cells;
    if (entry.name) assert.ok(activity.startsWith(entry.name), activity);
    assert.equal(status, STATUS[entry.status]);
    assert.equal(score, entry.best_scaled === undefined ? '—' : `${(entry.best_scaled * 100).toFixed(0)}%`);
    assert.deepEqual(row.times, [entry.first, entry.last]);
    assert.equal(platform, entry.platform);
  });

  const items = await page.locator('#competencies li[data-competency]').evaluateAll((lis) =>
    lis.map((li) => ({
      competency: li.dataset.competency,
      status: li.dataset.status,
      evidence: [...li.querySelectorAll('[data-statement]')].map((e) => e.dataset.statement),
    })),
  );
  assert.deepEqual(
    items,
    profile.competencies.map((c) => ({competency: c.competency, status: c.status, evidence: c.evidence})),
  );
  const achieved = profile.competencies.filter((c) => c.status === 'achieved').length;
  assert.equal(
    await page.locator('#competency-summary').textContent(),
    `You have achieved ${achieved} of ${profile.competencies.length} competencies.`,
  );
  // Evidence is described from the learner's own statements.
  const firstEvidence = profile.competencies.find((c) => c.evidence.length).evidence[0];
  const statement = await apiJson(`/xapi/statements?statementId=${firstEvidence}`, bearer, {xapi: true});
  const described = await page.locator(`[data-statement="${firstEvidence}"]`).first().textContent();
  assert.ok(described.includes(statement.object.definition.name['en-GB']), described);

  await screenshot(page, 'learning', {copyTo: join(ROOT, 'docs', 'screenshots', 'learning.png')});
  assert.deepEqual(problems, []);
  await context.close();
});

test('a learner sees only their own records', async () => {
  const [first, second] = learners;
  const {context, page, problems} = await signedIn(second);
  const own = await apiJson(`/analytics/learners/${second}/transcript`, admin);
  const other = await apiJson(`/analytics/learners/${first}/transcript`, admin);
  const shown = (await shownActivities(page)).map((row) => row.activity);
  assert.deepEqual(shown, own.activities.map((a) => a.activity));
  assert.notDeepEqual(shown, other.activities.map((a) => a.activity));
  assert.match(await page.locator('#who').textContent(), new RegExp(`account ${second}$`));
  // The API refuses the other learner's records to this token.
  const bearer = `Bearer ${learnerToken(second)}`;
  assert.equal((await apiGet(`/analytics/learners/${first}/transcript`, bearer)).status, 403);
  assert.equal((await apiGet(`/analytics/learners/${first}/competencies`, bearer)).status, 403);
  assert.deepEqual(problems, []);
  await context.close();
});

test('an expired or forged token is refused and nothing is shown', async () => {
  const {context, page, problems} = await openPage(browser);
  await page.goto(`${env.url}/ui/learning`);
  for (const token of [learnerToken(learners[0], -120), 'not.a.token']) {
    await page.getByLabel('Token', {exact: true}).fill(token);
    await page.getByRole('button', {name: 'Sign in'}).click();
    await page.locator('#status').getByText('the credential was refused').waitFor();
    assert.ok(await page.locator('#app').isHidden());
    assert.equal(await page.locator('#transcript-table').count(), 0);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  }
  assert.deepEqual(problems, []);
  await context.close();
});

test('the page prints without its controls', async () => {
  const {context, page, problems} = await signedIn(learners[0]);
  await page.emulateMedia({media: 'print'});
  for (const control of ['#print', '#signout', 'header.site']) {
    assert.ok(await page.locator(control).isHidden(), `${control} is printed`);
  }
  assert.ok(await page.locator('#transcript-table').isVisible());
  assert.ok(await page.locator('#competencies').isVisible());
  await screenshot(page, 'learning-print');
  assert.deepEqual(problems, []);
  await context.close();
});

test('keyboard and phone', async () => {
  const {context, page, problems} = await signedIn(learners[0], PHONE);
  await tabTo(page, '#signout');
  await tabTo(page, '#print');
  await assertNoHorizontalScroll(page, 'my learning on a phone');
  await screenshot(page, 'learning-phone');
  // Signing out forgets the token.
  await page.locator('#signout').press('Enter');
  await page.getByLabel('Token', {exact: true}).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  assert.deepEqual(problems, []);
  await context.close();
});
