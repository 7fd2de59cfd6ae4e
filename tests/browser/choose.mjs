// Picks organisations for the browser tests from the generated directory
// and statements: the analyst's organisation (an organisation one level
// below a root, with the most statements in its subtree and at least two
// organisations below it) and another one outside it. Prints "ANALYST OTHER".
// Usage: node choose.mjs DIR (holding organisations.csv and statements.ndjson)

import {readFileSync} from 'node:fs';
import {join} from 'node:path';

const dir = process.argv[2];
const lines = readFileSync(join(dir, 'organisations.csv'), 'utf8').trim().split('\n').slice(1);
// Codes never contain commas; the parent is the last cell.
const parentOf = new Map(lines.map((line) => {
  const cells = line.split(',');
  return [cells[0], cells[cells.length - 1] || null];
}));
const counts = new Map();
for (const line of readFileSync(join(dir, 'statements.ndjson'), 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const org = JSON.parse(line).context?.extensions?.['https://learninghub.nhs.uk/xapi/ext/organisation'];
  for (let code = org, steps = 0; code && steps < 64; code = parentOf.get(code), steps += 1) {
    counts.set(code, (counts.get(code) ?? 0) + 1);
  }
}
const childrenWithData = (code) => [...parentOf].filter(([child, parent]) => parent === code && counts.get(child)).length;
const candidates = [...parentOf]
  .filter(([code, parent]) => parent && !parentOf.get(parent) && childrenWithData(code) >= 2)
  .map(([code]) => code)
  .sort((a, b) => (counts.get(b) ?? 0) - (counts.get(a) ?? 0) || a.localeCompare(b));
if (candidates.length < 2) {
  console.error('the generated directory has too few organisations with statements');
  process.exit(1);
}
console.log(`${candidates[0]} ${candidates[1]}`);
