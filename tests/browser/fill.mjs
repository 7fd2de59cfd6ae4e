// Fills a running LRS for the browser tests and waits until the Learning
// Hub views show everything.
//   node fill.mjs post FILE   POSTs the NDJSON statements in batches
//   node fill.mjs settle      POSTs one last statement and waits (deadline)
//                             until its transcript appears: the projection
//                             applies the log in order, so everything
//                             stored before it is visible too.
// LRS_URL, LRS_ADMIN_KEY and LRS_ADMIN_SECRET name the server and an admin.

import {readFileSync} from 'node:fs';
import {randomUUID} from 'node:crypto';

const url = process.env.LRS_URL;
const authorization = `Basic ${Buffer.from(`${process.env.LRS_ADMIN_KEY}:${process.env.LRS_ADMIN_SECRET}`).toString('base64')}`;
const headers = {Authorization: authorization, 'X-Experience-API-Version': '2.0.0', 'Content-Type': 'application/json'};
const BATCH = 250;
const DEADLINE_MS = 120_000;

async function post(statements) {
  const response = await fetch(`${url}/xapi/statements`, {method: 'POST', headers, body: JSON.stringify(statements)});
  if (response.status !== 200) {
    // The error names the problem and where, never the statement's content.
    throw new Error(`POST /xapi/statements answered ${response.status}: ${(await response.text()).slice(0, 300)}`);
  }
}

async function postFile(file) {
  const lines = readFileSync(file, 'utf8').split('\n').filter((line) => line.trim());
  for (let start = 0; start < lines.length; start += BATCH) {
    await post(lines.slice(start, start + BATCH).map((line) => JSON.parse(line)));
  }
  console.log(`posted ${lines.length} statements`);
}

async function settle() {
  const account = `barrier-${randomUUID()}`;
  await post([{
    actor: {objectType: 'Agent', name: 'Browser test barrier', account: {homePage: 'https://learninghub.nhs.uk', name: account}},
    verb: {id: 'http://adlnet.gov/expapi/verbs/experienced', display: {'en-GB': 'experienced'}},
    object: {objectType: 'Activity', id: 'https://learninghub.nhs.uk/activities/browser-test/barrier', definition: {name: {'en-GB': 'Browser test barrier'}}},
  }]);
  const deadline = Date.now() + DEADLINE_MS;
  let delay = 25;
  while (Date.now() < deadline) {
    const response = await fetch(`${url}/analytics/learners/${account}/transcript`, {headers: {Authorization: authorization}});
    if (response.status === 200 && (await response.json()).activities.length === 1) {
      console.log('the Learning Hub views have caught up');
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 500);
  }
  throw new Error(`the Learning Hub views did not catch up within ${DEADLINE_MS / 1000} s`);
}

const [command, file] = process.argv.slice(2);
if (command === 'post') await postFile(file);
else if (command === 'settle') await settle();
else throw new Error('usage: node fill.mjs post FILE | settle');
