// The uptake dashboard: /analytics/uptake and /analytics/competencies/coverage
// for one organisation (and those below it), as charts and tables, with the
// organisations directly below it ranked by completion rate.

import {$, h, fill, api, say, explain, credential, signInForm, signOut, toCsv, download, table, formatNumber, formatPercent, ApiProblem} from './common.js';
import {barChart, horizontalBars, chartWidth} from './charts.js';

const FILTERS = ['org', 'from', 'to', 'granularity', 'activity', 'platform', 'staff_group'];
const METRICS = [
  {key: 'active_learners', title: 'Active learners', unit: 'learners', color: '#005eb8'},
  {key: 'started', title: 'Starts', unit: 'learner–activity pairs', color: '#330072'},
  {key: 'completed', title: 'Completions', unit: 'learner–activity pairs', color: '#007f3b'},
  {key: 'passed', title: 'Passes', unit: 'learner–activity pairs', color: '#ae2573'},
];
const GRANULARITY_WORDS = {day: 'day', week: 'ISO week', month: 'month'};

const status = $('#status');
const errorBox = $('#error');
const results = $('#results');

/** What the organisation picker knows: code → {code, name, parent}. */
let directory = new Map();
let everything = false;
/** The last answer shown, for the CSV download. */
let shown = null;

function orgLabel(code) {
  const entry = directory.get(code);
  return entry?.name ? `${entry.name} (${code})` : code;
}

function childrenOf(code) {
  return [...directory.values()].filter((o) => o.parent === code).map((o) => o.code);
}

/** Fills the organisation list, each under its parent. */
function fillPicker(selected) {
  const select = $('#org');
  const roots = [...directory.values()].filter((o) => !o.parent || !directory.has(o.parent));
  const byName = (a, b) => (a.name || a.code).localeCompare(b.name || b.code, 'en-GB');
  const options = [];
  const visit = (entry, depth, seen) => {
    if (seen.has(entry.code)) return;
    seen.add(entry.code);
    const indent = '\u00a0\u00a0\u00a0'.repeat(depth);
    options.push(h('option', {value: entry.code, selected: entry.code === selected}, `${indent}${entry.name || entry.code} (${entry.code})`));
    for (const child of [...directory.values()].filter((o) => o.parent === entry.code).sort(byName)) {
      visit(child, depth + 1, seen);
    }
  };
  const seen = new Set();
  for (const root of roots.sort(byName)) visit(root, 0, seen);
  fill(select, options.length ? options : h('option', {value: ''}, everything ? 'Type an ODS code to browse from' : 'No organisations'));
  $('#org-hint').textContent = everything
    ? 'You may see every organisation. Type an ODS code below; the organisations below it are then listed here.'
    : 'Organisations you may see, indented under their parent. Figures include the organisations below the one chosen.';
}

async function loadDirectory(root) {
  const answer = await api('basic', root ? `/ui/api/organisations?root=${encodeURIComponent(root)}` : '/ui/api/organisations');
  everything = answer.everything;
  for (const entry of answer.organisations) {
    const known = directory.get(entry.code);
    // A parent outside the answer is kept from an earlier answer.
    directory.set(entry.code, {...entry, parent: entry.parent ?? known?.parent ?? null});
  }
}

function readFilters() {
  const filters = {};
  const typed = $('#org-code').value.trim().toUpperCase();
  filters.org = typed || $('#org').value;
  for (const name of FILTERS.slice(1)) {
    const value = $(`#${name}`).value.trim();
    if (value) filters[name] = value;
  }
  return filters;
}

function writeFilters(filters) {
  for (const name of FILTERS.slice(1)) {
    if (filters[name] !== undefined) $(`#${name}`).value = filters[name];
  }
}

function query(filters, extra = {}) {
  const params = new URLSearchParams();
  for (const name of FILTERS) {
    if (filters[name]) params.set(name, filters[name]);
  }
  for (const [name, value] of Object.entries(extra)) params.set(name, value);
  return params.toString();
}

/** Runs `work` over items, `limit` at a time, keeping order. */
async function mapLimited(items, limit, work) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      out[index] = await work(items[index]);
    }
  };
  await Promise.all(Array.from({length: Math.min(limit, items.length)}, worker));
  return out;
}

function sum(periods, key) {
  return periods.reduce((total, p) => total + p[key], 0);
}

async function show(filters) {
  say(errorBox, '');
  results.hidden = true;
  delete results.dataset.query;
  shown = null;
  if (!filters.org) {
    say(errorBox, 'Choose an organisation or type its ODS code.', 'error');
    return;
  }
  if (!/^[A-Za-z0-9]{1,9}$/.test(filters.org)) {
    say(errorBox, 'An ODS code is 1 to 9 letters and digits.', 'error');
    return;
  }
  history.replaceState(null, '', `${location.pathname}?${query(filters)}`);
  say(status, `Loading uptake for ${filters.org}…`);
  $('#show').disabled = true;
  try {
    // The uptake answer decides access: nothing is drawn unless it is allowed.
    const uptake = await api('basic', `/analytics/uptake?${query(filters)}`);
    if (!directory.has(filters.org) || everything) {
      await loadDirectory(filters.org);
      fillPicker(filters.org);
    }
    if (directory.has(filters.org)) {
      $('#org').value = filters.org;
      $('#org-code').value = '';
    }
    const coverage = await api('basic', `/analytics/competencies/coverage?org=${encodeURIComponent(filters.org)}`);
    let ranked = childrenOf(filters.org);
    const rankingOfChildren = ranked.length > 0;
    if (!rankingOfChildren) ranked = [filters.org];
    const rankingRows = await mapLimited(ranked, 4, async (code) => {
      const answer = await api('basic', `/analytics/uptake?${query({...filters, org: code})}`);
      const started = sum(answer.periods, 'started');
      const completed = sum(answer.periods, 'completed');
      const passed = sum(answer.periods, 'passed');
      return {code, started, completed, passed, rate: started ? completed / started : null};
    });
    render(filters, uptake, coverage, rankingRows, rankingOfChildren);
    // Says which question the figures answer (tests wait for it).
    results.dataset.query = query(filters);
    say(status, `Showing uptake for ${orgLabel(filters.org)}.`);
  } catch (problem) {
    results.hidden = true;
    say(status, '');
    say(errorBox, explain(problem), 'error');
    if (problem instanceof ApiProblem && problem.status === 401) signedOut('Your credential was refused; sign in again.');
  } finally {
    $('#show').disabled = false;
  }
}

function render(filters, uptake, coverage, rankingRows, rankingOfChildren) {
  shown = uptake;
  const periods = uptake.periods;
  const labels = periods.map((p) => p.period);
  const words = [];
  if (filters.activity) words.push(`activity ${filters.activity}`);
  if (filters.platform) words.push(`platform ${filters.platform}`);
  if (filters.staff_group) words.push(`staff group ${filters.staff_group}`);
  $('#results-title').textContent = `Uptake for ${orgLabel(uptake.organisation)}`;
  $('#results-summary').textContent =
    `From ${uptake.from} to ${uptake.to}, per ${GRANULARITY_WORDS[uptake.granularity] ?? uptake.granularity}` +
    (words.length ? `, only ${words.join(', ')}` : ', all activities, platforms and staff groups') +
    `. ${periods.length} period${periods.length === 1 ? '' : 's'} with activity.`;
  results.hidden = false;

  const charts = $('#charts');
  charts.replaceChildren();
  const columns = charts.clientWidth > 900 ? 2 : 1;
  const width = chartWidth(charts, columns);
  for (const metric of METRICS) {
    charts.append(
      barChart({title: `${metric.title} per ${GRANULARITY_WORDS[uptake.granularity]}`, labels, values: periods.map((p) => p[metric.key]), unit: metric.unit, color: metric.color, width}),
    );
  }

  fill(
    $('#periods'),
    periods.length
      ? table({
          id: 'periods-table',
          caption: `Uptake per ${GRANULARITY_WORDS[uptake.granularity]}, ${uptake.organisation}`,
          columns: ['Period', {text: 'Active learners', class: 'num'}, {text: 'Started', class: 'num'}, {text: 'Completed', class: 'num'}, {text: 'Passed', class: 'num'}, {text: 'Statements', class: 'num'}],
          rows: periods.map((p) => [
            {text: p.period, class: 'nowrap'},
            ...['active_learners', 'started', 'completed', 'passed', 'statements'].map((key) => ({text: formatNumber(p[key]), class: 'num', value: p[key]})),
          ]),
        })
      : h('p', {class: 'message'}, 'No learning activity matches these filters in this period.'),
  );

  const sorted = [...rankingRows].sort((a, b) => (b.rate ?? -1) - (a.rate ?? -1) || b.started - a.started || a.code.localeCompare(b.code));
  fill(
    $('#ranking'),
    rankingOfChildren ? null : h('p', {class: 'hint'}, `No organisations are listed below ${uptake.organisation}; it is shown on its own.`),
    table({
      id: 'ranking-table',
      caption: rankingOfChildren ? `Organisations directly below ${orgLabel(uptake.organisation)}` : orgLabel(uptake.organisation),
      columns: ['Organisation', {text: 'Rank', class: 'num'}, {text: 'Started', class: 'num'}, {text: 'Completed', class: 'num'}, {text: 'Passed', class: 'num'}, {text: 'Completion rate', class: 'num'}],
      rows: sorted.map((row, index) => [
        {content: h('span', {'data-code': row.code}, orgLabel(row.code))},
        {text: String(index + 1), class: 'num'},
        {text: formatNumber(row.started), class: 'num', value: row.started},
        {text: formatNumber(row.completed), class: 'num', value: row.completed},
        {text: formatNumber(row.passed), class: 'num', value: row.passed},
        {text: formatPercent(row.rate, 1), class: 'num', value: row.rate ?? ''},
      ]),
    }),
  );

  renderCoverage(coverage);
}

function frameworkName(iri) {
  const last = iri.replace(/\/+$/, '').split('/').pop() || iri;
  const words = last.replace(/[-_]+/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function renderCoverage(coverage) {
  const container = $('#coverage');
  const items = coverage.competencies;
  if (!items.length) {
    fill(container, h('p', {class: 'message'}, 'This LRS has no competency frameworks configured.'));
    return;
  }
  const frameworks = new Map();
  for (const item of items) {
    if (!frameworks.has(item.framework)) frameworks.set(item.framework, new Map());
    const domains = frameworks.get(item.framework);
    if (!domains.has(item.domain)) domains.set(item.domain, []);
    domains.get(item.domain).push(item);
  }
  const parts = [];
  for (const [framework, domains] of frameworks) {
    parts.push(
      h('h3', {}, frameworkName(framework)),
      h('p', {class: 'hint'}, framework),
      horizontalBars({
        title: `Learners who achieved each competency, ${frameworkName(framework)}, by domain`,
        groups: [...domains].map(([domain, list]) => ({name: domain, items: list.map((c) => ({label: c.name, value: c.learners_achieved}))})),
        unit: 'learners',
        width: chartWidth(container),
      }),
    );
  }
  parts.push(
    h('h3', {}, 'Coverage table'),
    table({
      id: 'coverage-table',
      caption: `Learners who achieved each competency, ${coverage.organisation}`,
      columns: ['Competency', 'Domain', 'Framework', {text: 'Learners achieved', class: 'num'}],
      rows: items.map((c) => [
        {content: h('span', {'data-competency': c.competency}, c.name)},
        c.domain,
        frameworkName(c.framework),
        {text: formatNumber(c.learners_achieved), class: 'num', value: c.learners_achieved},
      ]),
    }),
  );
  fill(container, parts);
}

function downloadCsv() {
  if (!shown) return;
  const rows = shown.periods.map((p) => [shown.organisation, p.period, p.active_learners, p.started, p.completed, p.passed, p.statements]);
  const text = toCsv(['organisation', 'period', 'active_learners', 'started', 'completed', 'passed', 'statements'], rows);
  download(`uptake-${shown.organisation}-${shown.from}-to-${shown.to}-${shown.granularity}.csv`, text);
}

function signedOut(message = '') {
  signOut('basic');
  directory = new Map();
  $('#app').hidden = true;
  $('#signin').hidden = false;
  say(status, message, message ? 'error' : 'info');
  $('#key').focus();
}

async function start() {
  const stored = credential('basic');
  if (!stored) {
    signedOut();
    return;
  }
  $('#signin').hidden = true;
  $('#who').textContent = stored.key;
  say(status, 'Checking your access…');
  try {
    await loadDirectory();
  } catch (problem) {
    if (problem instanceof ApiProblem && problem.status === 401) {
      signedOut(explain(problem));
      return;
    }
    $('#app').hidden = false;
    $('#filters').hidden = true;
    say(status, '');
    say(errorBox, explain(problem), 'error');
    return;
  }
  $('#app').hidden = false;
  $('#filters').hidden = false;
  say(status, '');
  const initial = Object.fromEntries(new URLSearchParams(location.search));
  writeFilters(initial);
  const org = initial.org?.toUpperCase();
  if (org && !directory.has(org)) $('#org-code').value = org;
  fillPicker(org ?? [...directory.keys()][0]);
  if (org) await show(readFilters());
}

signInForm({
  form: $('#signin'),
  kind: 'basic',
  read: () => {
    const value = {key: $('#key').value.trim(), secret: $('#secret').value};
    $('#secret').value = '';
    return value;
  },
  onSignedIn: start,
});
$('#signout').addEventListener('click', () => signedOut('You have signed out.'));
$('#filters').addEventListener('submit', (event) => {
  event.preventDefault();
  show(readFilters());
});
$('#org').addEventListener('change', () => {
  $('#org-code').value = '';
});
$('#download').addEventListener('click', downloadCsv);
start();
