// The statement explorer: the xAPI statements query with its filters, paged
// with the `more` links the LRS returns, and any statement's JSON.

import {$, h, fill, api, say, explain, credential, signInForm, signOut, table, formatDateTime, ApiProblem} from './common.js';

const status = $('#status');
const errorBox = $('#error');
const TEXT_FILTERS = ['agent', 'verb', 'activity', 'registration', 'since', 'until', 'limit'];
const FLAGS = ['related_activities', 'related_agents', 'ascending'];
const HUB_HOME_PAGE = 'https://learninghub.nhs.uk';

let firstPage = null;
let nextPage = null;
let pageNumber = 1;
let current = [];

/** The agent parameter from what was typed: JSON, an email address or a Learning Hub account name. */
function agentParameter(text) {
  if (text.startsWith('{')) {
    JSON.parse(text);
    return text;
  }
  if (text.startsWith('mailto:')) return JSON.stringify({mbox: text});
  if (text.includes('@')) return JSON.stringify({mbox: `mailto:${text}`});
  return JSON.stringify({account: {homePage: HUB_HOME_PAGE, name: text}});
}

function readQuery() {
  const params = new URLSearchParams();
  for (const name of TEXT_FILTERS) {
    const value = $(`#${name}`).value.trim();
    if (!value) continue;
    params.set(name, name === 'agent' ? agentParameter(value) : value);
  }
  for (const name of FLAGS) {
    if ($(`#${name}`).checked) params.set(name, 'true');
  }
  return params;
}

function writeQuery(params) {
  for (const name of TEXT_FILTERS) {
    const value = params.get(name);
    if (value === null) continue;
    let shown = value;
    if (name === 'agent') {
      try {
        const agent = JSON.parse(value);
        const keys = Object.keys(agent);
        if (keys.length === 1 && agent.account?.homePage === HUB_HOME_PAGE) shown = agent.account.name;
        else if (keys.length === 1 && agent.mbox) shown = agent.mbox.replace(/^mailto:/, '');
      } catch {
        shown = value;
      }
    }
    $(`#${name}`).value = shown;
  }
  for (const name of FLAGS) $(`#${name}`).checked = params.get(name) === 'true';
}

function languageText(map) {
  if (!map) return '';
  return map['en-GB'] ?? map['en-US'] ?? map.en ?? Object.values(map)[0] ?? '';
}

function describeAgent(agent) {
  if (!agent) return '';
  if (agent.account) return agent.name ? `${agent.name} (${agent.account.name})` : agent.account.name;
  if (agent.mbox) return agent.name ? `${agent.name} (${agent.mbox.replace(/^mailto:/, '')})` : agent.mbox.replace(/^mailto:/, '');
  if (agent.objectType === 'Group') return agent.name ?? 'a group';
  return agent.name ?? agent.openid ?? agent.mbox_sha1sum ?? '';
}

function describeObject(object) {
  if (!object) return '';
  if (object.objectType === 'StatementRef') return `statement ${object.id}`;
  if (object.objectType === 'SubStatement') return 'a sub-statement';
  if (object.objectType === 'Agent' || object.objectType === 'Group') return describeAgent(object);
  return languageText(object.definition?.name) || object.id;
}

function showStatement(index) {
  const statement = current[index];
  if (!statement) return;
  for (const row of document.querySelectorAll('#statements-table tbody tr')) row.classList.remove('selected');
  document.querySelectorAll('#statements-table tbody tr')[index]?.classList.add('selected');
  $('#detail').hidden = false;
  $('#detail-title').textContent = `Statement ${statement.id}`;
  $('#json').textContent = JSON.stringify(statement, null, 2);
  $('#detail-title').focus();
}

function render(result) {
  current = result.statements;
  nextPage = result.more || null;
  $('#results').hidden = false;
  $('#detail').hidden = true;
  const count = current.length;
  $('#page-info').textContent = count
    ? `Page ${pageNumber}: ${count} statement${count === 1 ? '' : 's'}${nextPage ? '; there are more.' : '; this is the last page.'}`
    : pageNumber === 1 ? 'No statements match these filters.' : 'No more statements.';
  fill(
    $('#list'),
    count
      ? table({
          id: 'statements-table',
      stack: true,
          caption: `Statements, page ${pageNumber}`,
          columns: ['Stored (UTC)', 'Actor', 'Verb', 'Object', 'JSON'],
          rows: current.map((st, index) => [
            {content: h('time', {datetime: st.stored}, formatDateTime(st.stored))},
            describeAgent(st.actor),
            languageText(st.verb?.display) || st.verb?.id,
            {content: h('span', {title: st.object?.id ?? ''}, describeObject(st.object)), class: 'id'},
            {
              content: h(
                'button',
                {type: 'button', class: 'link', 'data-id': st.id, 'aria-label': `Show the JSON of statement ${st.id}`, onclick: () => showStatement(index)},
                'Show JSON',
              ),
            },
          ]),
        })
      : null,
  );
  $('#more').disabled = !nextPage;
  $('#first').disabled = pageNumber === 1;
}

async function load(path) {
  say(errorBox, '');
  say(status, 'Loading statements…');
  delete $('#results').dataset.request;
  try {
    const result = await api('basic', path, {xapi: true});
    render(result);
    // Says which request the list answers (tests wait for it).
    $('#results').dataset.request = path;
    say(status, '');
  } catch (problem) {
    say(status, '');
    $('#results').hidden = true;
    $('#detail').hidden = true;
    say(errorBox, explain(problem), 'error');
    if (problem instanceof ApiProblem && problem.status === 401) signedOut(explain(problem), 'error');
  }
}

async function search() {
  let params;
  try {
    params = readQuery();
  } catch {
    say(errorBox, 'The agent is not valid JSON.', 'error');
    return;
  }
  history.replaceState(null, '', `${location.pathname}${params.size ? `?${params}` : ''}`);
  firstPage = `/xapi/statements${params.size ? `?${params}` : ''}`;
  pageNumber = 1;
  await load(firstPage);
}

function signedOut(message = '', kind = 'info') {
  signOut('basic');
  $('#app').hidden = true;
  $('#signin').hidden = false;
  say(status, message, kind);
  $('#key').focus();
}

function start() {
  const stored = credential('basic');
  if (!stored) {
    signedOut();
    return;
  }
  $('#signin').hidden = true;
  $('#app').hidden = false;
  $('#who').textContent = stored.key;
  writeQuery(new URLSearchParams(location.search));
  search();
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
$('#query').addEventListener('submit', (event) => {
  event.preventDefault();
  search();
});
$('#more').addEventListener('click', async () => {
  if (!nextPage) return;
  pageNumber += 1;
  await load(nextPage);
  $('#results-title').focus?.();
});
$('#first').addEventListener('click', () => {
  if (!firstPage) return;
  pageNumber = 1;
  load(firstPage);
});
start();
