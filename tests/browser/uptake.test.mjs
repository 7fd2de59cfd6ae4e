// The uptake dashboard (/ui/uptake) as an analyst granted one organisation.

import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {join} from 'node:path';
import {
  env, launch, openPage, apiJson, apiGet, basicHeader, screenshot, tableRows, number, assertNoHorizontalScroll,
  tabTo, signInBasic, organisations, statements, PHONE, ROOT,
} from './lib.mjs';

const FROM = '2026-01-01';
const TO = '2026-02-28';
const ORGANISATION_EXT = 'https://learninghub.nhs.uk/xapi/ext/organisation';
const STAFF_GROUP_EXT = 'https://learninghub.nhs.uk/xapi/ext/staff-group';
const analyst = basicHeader(env.analyst);

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** The organisations in `code`'s subtree, from the generated directory. */
function subtree(code) {
  const all = organisations();
  const out = [code];
  for (let i = 0; i < out.length; i += 1) {
    for (const o of all) if (o.parent === out[i]) out.push(o.code);
  }
  return out;
}

/** The most common value of `pick` among the statements of the analyst's organisations. */
function mostCommon(pick) {
  const inside = new Set(subtree(env.analystOrg));
  const counts = new Map();
  for (const s of statements()) {
    if (!inside.has(s.context?.extensions?.[ORGANISATION_EXT])) continue;
    const value = pick(s);
    if (value) counts.set(value, (counts.get(value) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1])[0][0];
}

function query(filters) {
  const params = new URLSearchParams();
  for (const name of ['org', 'from', 'to', 'granularity', 'activity', 'platform', 'staff_group']) {
    if (filters[name]) params.set(name, filters[name]);
  }
  return params.toString();
}

async function signedIn(viewport) {
  const opened = await openPage(browser, {viewport, acceptDownloads: true});
  await opened.page.goto(`${env.url}/ui/uptake`);
  await signInBasic(opened.page, env.analyst);
  await opened.page.locator('#filters').waitFor();
  return opened;
}

/** Sets the filters through the form, submits, and waits for the figures. */
async function show(page, filters) {
  const full = {from: FROM, to: TO, granularity: 'week', activity: '', platform: '', staff_group: '', ...filters};
  await page.getByLabel('Organisation', {exact: true}).selectOption(full.org);
  await page.getByLabel('Or ODS code', {exact: true}).fill('');
  await page.getByLabel('From', {exact: true}).fill(full.from);
  await page.getByLabel('To', {exact: true}).fill(full.to);
  await page.getByLabel('Periods', {exact: true}).selectOption(full.granularity);
  await page.getByLabel('Activity or programme IRI', {exact: true}).fill(full.activity);
  await page.getByLabel('Platform', {exact: true}).fill(full.platform);
  await page.getByLabel('Staff group', {exact: true}).fill(full.staff_group);
  await page.getByRole('button', {name: 'Show uptake'}).click();
  await page.locator(`#results[data-query="${query(full)}"]`).waitFor();
  return full;
}

/** The figures table equals the API's answer for the same question. */
async function assertFiguresMatch(page, filters) {
  const answer = await apiJson(`/analytics/uptake?${query(filters)}`, analyst);
  if (!answer.periods.length) {
    await page.getByText('No learning activity matches these filters').waitFor();
    return answer;
  }
  const rows = await tableRows(page, '#periods-table');
  assert.deepEqual(
    rows.map(([period, ...cells]) => [period, ...cells.map(number)]),
    answer.periods.map((p) => [p.period, p.active_learners, p.started, p.completed, p.passed, p.statements]),
    `figures for ${query(filters)}`,
  );
  // One chart per measure, each with an accessible name and a bar per period.
  const charts = page.locator('#charts svg[role="img"]');
  assert.equal(await charts.count(), 4);
  for (const chart of await charts.all()) {
    assert.ok((await chart.getAttribute('aria-labelledby')).length > 0);
    assert.ok((await chart.locator('title').first().textContent()).length > 0);
    assert.equal(await chart.locator('rect').count(), answer.periods.length);
  }
  return answer;
}

test('the analyst picks among their own organisations only', async () => {
  const {context, page, problems} = await signedIn();
  const listed = await page.locator('#org option').evaluateAll((options) => options.map((o) => o.value));
  const expected = (await apiJson('/ui/api/organisations', analyst)).organisations.map((o) => o.code);
  assert.deepEqual(new Set(listed), new Set(expected));
  assert.deepEqual(new Set(listed), new Set(subtree(env.analystOrg)));
  assert.ok(!listed.includes(env.otherOrg));
  // Children are indented under their parent, which comes first.
  assert.equal(listed[0], env.analystOrg);
  assert.deepEqual(problems, []);
  await context.close();
});

test('figures equal the API for each organisation, period, granularity and filter', async () => {
  const {context, page, problems} = await signedIn();
  const child = organisations().find((o) => o.parent === env.analystOrg).code;
  const platform = mostCommon((s) => s.context?.platform);
  const staffGroup = mostCommon((s) => s.context?.extensions?.[STAFF_GROUP_EXT]);
  const activity = mostCommon((s) => (s.verb.id.endsWith('/completed') ? s.object.id : null));
  const cases = [
    {org: env.analystOrg, granularity: 'day'},
    {org: env.analystOrg, granularity: 'week'},
    {org: env.analystOrg, granularity: 'month'},
    {org: child, granularity: 'week'},
    {org: env.analystOrg, granularity: 'day', from: '2026-01-10', to: '2026-01-31'},
    {org: env.analystOrg, granularity: 'month', platform},
    {org: env.analystOrg, granularity: 'week', staff_group: staffGroup},
    {org: env.analystOrg, granularity: 'month', activity},
    {org: env.analystOrg, granularity: 'week', platform: 'no-such-platform'},
  ];
  let periodsSeen = 0;
  for (const filters of cases) {
    const full = await show(page, filters);
    const answer = await assertFiguresMatch(page, full);
    periodsSeen += answer.periods.length;
    // The address names the question, so it can be shared.
    assert.equal(new URL(page.url()).search.slice(1), query(full));
  }
  assert.ok(periodsSeen > 10, 'the generated data gives the dashboard something to show');
  assert.deepEqual(problems, []);
  await context.close();
});

test('organisations are ranked by completion rate as the API counts them', async () => {
  const {context, page, problems} = await signedIn();
  const full = await show(page, {org: env.analystOrg, granularity: 'month'});
  const children = organisations().filter((o) => o.parent === env.analystOrg).map((o) => o.code);
  const expected = new Map();
  for (const code of children) {
    const {periods} = await apiJson(`/analytics/uptake?${query({...full, org: code})}`, analyst);
    const sum = (key) => periods.reduce((total, p) => total + p[key], 0);
    expected.set(code, {started: sum('started'), completed: sum('completed'), passed: sum('passed')});
  }
  const rows = await page.locator('#ranking-table tbody tr').evaluateAll((trs) =>
    trs.map((tr) => ({code: tr.querySelector('[data-code]').dataset.code, cells: [...tr.children].map((c) => c.textContent.trim())})),
  );
  assert.deepEqual(rows.map((r) => r.code).sort(), [...children].sort());
  let previous = Infinity;
  rows.forEach((row, index) => {
    const [, rank, started, completed, passed, rate] = row.cells;
    const want = expected.get(row.code);
    assert.equal(number(rank), index + 1);
    assert.deepEqual([number(started), number(completed), number(passed)], [want.started, want.completed, want.passed], row.code);
    const ratio = want.started ? want.completed / want.started : null;
    assert.equal(rate, ratio === null ? '—' : `${(ratio * 100).toFixed(1)}%`, row.code);
    const value = ratio ?? -1;
    assert.ok(value <= previous, 'ranked from the highest completion rate down');
    previous = value;
  });
  assert.deepEqual(problems, []);
  await context.close();
});

test('competency coverage per domain equals the API', async () => {
  const {context, page, problems} = await signedIn();
  await show(page, {org: env.analystOrg});
  const coverage = await apiJson(`/analytics/competencies/coverage?org=${env.analystOrg}`, analyst);
  assert.ok(coverage.competencies.length > 0);
  assert.ok(coverage.competencies.some((c) => c.learners_achieved > 0), 'some competency is achieved in the generated data');
  const rows = await page.locator('#coverage-table tbody tr').evaluateAll((trs) =>
    trs.map((tr) => [tr.querySelector('[data-competency]').dataset.competency, ...[...tr.children].slice(1).map((c) => c.textContent.trim())]),
  );
  assert.deepEqual(
    rows.map(([id, domain, , achieved]) => [id, domain, number(achieved)]),
    coverage.competencies.map((c) => [c.competency, c.domain, c.learners_achieved]),
  );
  // A bar chart per framework, grouped by domain, with an accessible name.
  const frameworks = new Set(coverage.competencies.map((c) => c.framework));
  const charts = page.locator('#coverage svg[role="img"]');
  assert.equal(await charts.count(), frameworks.size);
  assert.equal(await page.locator('#coverage svg rect').count(), coverage.competencies.length);
  assert.deepEqual(problems, []);
  await context.close();
});

test('Download CSV gives the same data as the API', async () => {
  const {context, page, problems} = await signedIn();
  const full = await show(page, {org: env.analystOrg, granularity: 'week', platform: 'e-LfH'});
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', {name: 'Download CSV'}).click()]);
  assert.match(download.suggestedFilename(), new RegExp(`^uptake-${env.analystOrg}-.*\\.csv$`));
  const text = readFileSync(await download.path(), 'utf8');
  const api = await apiGet(`/analytics/uptake?${query(full)}&format=csv`, analyst, {accept: 'text/csv'});
  assert.equal(api.status, 200);
  assert.equal(text, api.body);
  assert.ok(text.split('\n').length > 2);
  assert.deepEqual(problems, []);
  await context.close();
});

test('an analyst granted every organisation browses the hierarchy from a code', async () => {
  const {context, page, problems} = await openPage(browser);
  await page.goto(`${env.url}/ui/uptake`);
  await signInBasic(page, env.admin);
  await page.locator('#filters').waitFor();
  // No list of every organisation exists: the page asks for a code.
  await page.locator('#org-hint').getByText('You may see every organisation').waitFor();
  const root = organisations().find((o) => !o.parent).code;
  await page.getByLabel('Or ODS code', {exact: true}).fill(root.toLowerCase());
  await page.getByLabel('From', {exact: true}).fill(FROM);
  await page.getByLabel('To', {exact: true}).fill(TO);
  await page.getByRole('button', {name: 'Show uptake'}).click();
  await page.locator(`#results[data-query="${query({org: root, from: FROM, to: TO, granularity: 'week'})}"]`).waitFor();
  // The organisations below the code are now listed, each under its parent.
  const listed = await page.locator('#org option').evaluateAll((options) => options.map((o) => o.value));
  assert.deepEqual(new Set(listed), new Set(subtree(root)));
  assert.equal(await page.locator('#org').inputValue(), root);
  assert.equal(await page.getByLabel('Or ODS code', {exact: true}).inputValue(), '');
  const answer = await apiJson(`/analytics/uptake?${query({org: root, from: FROM, to: TO, granularity: 'week'})}`, basicHeader(env.admin));
  const rows = await tableRows(page, '#periods-table');
  assert.deepEqual(rows.map((r) => number(r[1])), answer.periods.map((p) => p.active_learners));
  assert.deepEqual(problems, []);
  await context.close();
});

test('another organisation is refused with a message and no figures', async () => {
  const {context, page, problems} = await signedIn();
  // Typed into the form…
  await page.getByLabel('Or ODS code', {exact: true}).fill(env.otherOrg);
  await page.getByRole('button', {name: 'Show uptake'}).click();
  const error = page.locator('#error');
  await error.getByText('may not see that organisation').waitFor();
  assert.match(await error.textContent(), /You do not have access/);
  assert.ok(await page.locator('#results').isHidden());
  assert.equal(await page.locator('#periods-table, #ranking-table, #coverage-table, #charts svg').count(), 0);
  // …or asked for in the address.
  await page.goto(`${env.url}/ui/uptake?org=${env.otherOrg}&from=${FROM}&to=${TO}`);
  await page.locator('#error').getByText('may not see that organisation').waitFor();
  assert.ok(await page.locator('#results').isHidden());
  assert.equal(await page.locator('#periods-table, #ranking-table, #coverage-table, #charts svg').count(), 0);
  await screenshot(page, 'uptake-forbidden');
  // The API agrees.
  assert.equal((await apiGet(`/analytics/uptake?org=${env.otherOrg}`, analyst)).status, 403);
  assert.deepEqual(problems, []);
  await context.close();
});

test('a wrong secret is refused and nothing is shown', async () => {
  const {context, page, problems} = await openPage(browser);
  await page.goto(`${env.url}/ui/uptake`);
  await signInBasic(page, {key: env.analyst.key, secret: 'not-the-secret'});
  await page.locator('#status').getByText('not signed in, or the credential was refused').waitFor();
  assert.ok(await page.locator('#app').isHidden());
  assert.ok(await page.locator('#signin').isVisible());
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  assert.deepEqual(problems, []);
  await context.close();
});

test('the filters work from the keyboard alone', async () => {
  const {context, page, problems} = await signedIn();
  await page.getByLabel('From', {exact: true}).fill(FROM);
  await page.getByLabel('To', {exact: true}).fill(TO);
  for (const control of ['#org', '#org-code', '#from', '#to', '#granularity', '#activity', '#platform', '#staff_group', '#show']) {
    await tabTo(page, control);
  }
  // Choose months with the arrow keys and submit with Enter.
  await tabTo(page, '#granularity');
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.locator('#granularity').inputValue(), 'month');
  await tabTo(page, '#show');
  await page.keyboard.press('Enter');
  await page.locator(`#results[data-query="${query({org: env.analystOrg, from: FROM, to: TO, granularity: 'month'})}"]`).waitFor();
  await tabTo(page, '#download', 60);
  assert.deepEqual(problems, []);
  await context.close();
});

test('screenshots on a laptop and a phone, without sideways scrolling', async () => {
  for (const [name, viewport] of [['uptake', undefined], ['uptake-phone', PHONE]]) {
    const {context, page, problems} = await signedIn(viewport);
    await show(page, {org: env.analystOrg, granularity: 'day'});
    await assertNoHorizontalScroll(page, name);
    await screenshot(page, name, {copyTo: name === 'uptake' ? join(ROOT, 'docs', 'screenshots', 'uptake.png') : undefined});
    assert.deepEqual(problems, []);
    await context.close();
  }
});
