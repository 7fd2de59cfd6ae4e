// "My learning": the signed-in learner's transcript and competency profile,
// from /analytics/learners/me/…, with the statements behind each achieved
// competency from /xapi/statements (a learner may read their own).

import {$, h, fill, api, say, explain, credential, signInForm, signOut, table, formatDate, formatDateTime, formatDuration, formatPercent, ApiProblem} from './common.js';

const status = $('#status');
const errorBox = $('#error');

/** At most this many evidence statements are fetched for one profile. */
const MAX_EVIDENCE_FETCHES = 60;

const STATUS_WORDS = {
  passed: 'Passed',
  completed: 'Completed',
  failed: 'Failed',
  in_progress: 'In progress',
  achieved: 'Achieved',
  not_started: 'Not started',
};

function statusBadge(value) {
  return h('span', {class: `status ${value}`}, STATUS_WORDS[value] ?? value);
}

/** "account:https://learninghub.nhs.uk|1234567" → "Learning Hub account 1234567". */
function describeLearner(key) {
  const match = /^account:(.*)\|(.*)$/.exec(key);
  if (match) return match[1] === 'https://learninghub.nhs.uk' ? `Learning Hub account ${match[2]}` : `account ${match[2]} at ${match[1]}`;
  return key.replace(/^mbox:mailto:/, '');
}

function frameworkName(iri) {
  const last = iri.replace(/\/+$/, '').split('/').pop() || iri;
  const words = last.replace(/[-_]+/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function languageText(map) {
  if (!map) return '';
  return map['en-GB'] ?? map['en-US'] ?? map.en ?? Object.values(map)[0] ?? '';
}

function renderTranscript(activities) {
  const container = $('#transcript');
  if (!activities.length) {
    fill(container, h('p', {class: 'message'}, 'There is no learning on your record yet.'));
    return;
  }
  fill(
    container,
    table({
      id: 'transcript-table',
      stack: true,
      caption: `Your activities, most recent first (${activities.length})`,
      columns: ['Activity', 'Status', {text: 'Best score', class: 'num'}, 'First (UTC)', 'Last (UTC)', {text: 'Time spent', class: 'num'}, 'Platform'],
      rows: activities.map((a) => [
        {content: h('span', {'data-activity': a.activity}, a.name ? [a.name, h('br'), h('small', {class: 'hint'}, a.activity)] : a.activity), class: 'id'},
        {content: statusBadge(a.status), value: a.status},
        {text: a.best_scaled === undefined ? '—' : formatPercent(a.best_scaled), class: 'num', value: a.best_scaled ?? ''},
        {content: h('time', {datetime: a.first}, formatDateTime(a.first))},
        {content: h('time', {datetime: a.last}, formatDateTime(a.last))},
        {text: formatDuration(a.total_duration_ms), class: 'num', value: a.total_duration_ms},
        a.platform,
      ]),
    }),
  );
}

async function describeEvidence(id, budget) {
  if (budget.left <= 0) return h('li', {}, h('code', {}, id));
  budget.left -= 1;
  try {
    const statement = await api('bearer', `/xapi/statements?statementId=${encodeURIComponent(id)}`, {xapi: true});
    const verb = languageText(statement.verb?.display) || statement.verb?.id?.split('/').pop() || 'did';
    const object = statement.object ?? {};
    const name = languageText(object.definition?.name) || object.id || '';
    const score = statement.result?.score?.scaled;
    const when = statement.timestamp ?? statement.stored;
    return h(
      'li',
      {'data-statement': id},
      `${verb.charAt(0).toUpperCase()}${verb.slice(1)} `,
      h('strong', {}, name),
      when ? ` on ${formatDate(when)}` : '',
      score === undefined ? '' : `, score ${formatPercent(score)}`,
      h('br'),
      h('small', {class: 'hint'}, `Statement ${id}`),
    );
  } catch {
    return h('li', {'data-statement': id}, h('code', {}, id));
  }
}

async function renderCompetencies(competencies) {
  const container = $('#competencies');
  if (!competencies.length) {
    fill(container, h('p', {class: 'message'}, 'This LRS has no competency frameworks configured.'));
    return;
  }
  const achieved = competencies.filter((c) => c.status === 'achieved').length;
  const frameworks = new Map();
  for (const c of competencies) {
    if (!frameworks.has(c.framework)) frameworks.set(c.framework, new Map());
    const domains = frameworks.get(c.framework);
    if (!domains.has(c.domain)) domains.set(c.domain, []);
    domains.get(c.domain).push(c);
  }
  const budget = {left: MAX_EVIDENCE_FETCHES};
  const parts = [h('p', {id: 'competency-summary'}, `You have achieved ${achieved} of ${competencies.length} competencies.`)];
  for (const [framework, domains] of frameworks) {
    const sections = [];
    for (const [domain, list] of domains) {
      const items = [];
      for (const c of list) {
        const evidence = c.evidence.length
          ? h('ul', {class: 'evidence', 'aria-label': `Evidence for ${c.name}`}, await Promise.all(c.evidence.map((id) => describeEvidence(id, budget))))
          : null;
        items.push(
          h(
            'li',
            {'data-competency': c.competency, 'data-status': c.status},
            h('strong', {}, c.name),
            ' ',
            statusBadge(c.status),
            c.achieved_at ? ` on ${formatDate(c.achieved_at)}` : '',
            evidence,
          ),
        );
      }
      sections.push(h('div', {class: 'domain'}, h('h4', {}, domain), h('ul', {class: 'competencies'}, items)));
    }
    parts.push(h('section', {class: 'framework'}, h('h3', {}, frameworkName(framework)), h('p', {class: 'hint'}, framework), sections));
  }
  fill(container, parts);
}

function signedOut(message = '', kind = 'info') {
  signOut('bearer');
  $('#app').hidden = true;
  $('#signin').hidden = false;
  say(status, message, kind);
  $('#token').focus();
}

async function start() {
  if (!credential('bearer')) {
    signedOut();
    return;
  }
  $('#signin').hidden = true;
  say(status, 'Loading your records…');
  delete $('#app').dataset.loaded;
  say(errorBox, '');
  try {
    const [transcript, profile] = await Promise.all([
      api('bearer', '/analytics/learners/me/transcript'),
      api('bearer', '/analytics/learners/me/competencies'),
    ]);
    $('#who').textContent = describeLearner(transcript.learner);
    $('#app').hidden = false;
    renderTranscript(transcript.activities);
    await renderCompetencies(profile.competencies);
    $('#app').dataset.loaded = 'true';
    say(status, '');
  } catch (problem) {
    if (problem instanceof ApiProblem && (problem.status === 401 || problem.status === 400)) {
      signedOut(explain(problem), 'error');
      return;
    }
    $('#app').hidden = false;
    say(status, '');
    say(errorBox, explain(problem), 'error');
  }
}

signInForm({
  form: $('#signin'),
  kind: 'bearer',
  read: () => {
    const token = $('#token').value.trim().replace(/^Bearer\s+/i, '');
    if (!token) return null;
    $('#token').value = '';
    return {token};
  },
  onSignedIn: start,
});
$('#signout').addEventListener('click', () => signedOut('You have signed out.'));
$('#print').addEventListener('click', () => window.print());
start();
