// Shared helpers of the Learning Hub pages: DOM building, the signed-in
// credential (kept in sessionStorage only), API calls and formatting.

export const XAPI_VERSION = '2.0.0';

/** Builds an HTML element: h('td', {class: 'num'}, '12'). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  setAttributes(element, attributes);
  append(element, children);
  return element;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Builds an SVG element. */
export function s(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  setAttributes(element, attributes);
  append(element, children);
  return element;
}

function setAttributes(element, attributes) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's content. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export const $ = (selector, root = document) => root.querySelector(selector);

// ----- the credential -----

const STORAGE_KEY = {basic: 'lrs.ui.basic', bearer: 'lrs.ui.bearer'};

function base64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** The signed-in credential of a kind ('basic' or 'bearer'), or null. */
export function credential(kind) {
  try {
    const stored = sessionStorage.getItem(STORAGE_KEY[kind]);
    return stored ? JSON.parse(stored) : null;
  } catch {
    return null;
  }
}

export function signIn(kind, value) {
  sessionStorage.setItem(STORAGE_KEY[kind], JSON.stringify(value));
}

export function signOut(kind) {
  sessionStorage.removeItem(STORAGE_KEY[kind]);
}

function authorization(kind) {
  const stored = credential(kind);
  if (!stored) return null;
  return kind === 'basic' ? `Basic ${base64(`${stored.key}:${stored.secret}`)}` : `Bearer ${stored.token}`;
}

/** An API answer that was not 2xx, with the server's message. */
export class ApiProblem extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * GETs a JSON API with the signed-in credential of `kind`. Throws
 * ApiProblem with the server's error message on a non-2xx answer.
 */
export async function api(kind, path, {xapi = false} = {}) {
  const headers = {Accept: 'application/json'};
  const auth = authorization(kind);
  if (auth) headers.Authorization = auth;
  if (xapi) headers['X-Experience-API-Version'] = XAPI_VERSION;
  let response;
  try {
    response = await fetch(path, {headers, cache: 'no-store', credentials: 'omit'});
  } catch {
    throw new ApiProblem(0, 'The LRS could not be reached. Check your connection and try again.');
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body?.error?.message || `${response.status} ${response.statusText}`;
    throw new ApiProblem(response.status, message);
  }
  return body;
}

/** Words for an API problem, for people. */
export function explain(problem) {
  if (!(problem instanceof ApiProblem)) return `Something went wrong: ${problem?.message ?? problem}`;
  switch (problem.status) {
    case 401:
      return `You are not signed in, or the credential was refused: ${problem.message}.`;
    case 403:
      return `You do not have access to this: ${problem.message}.`;
    case 429:
      return 'Too many failed sign-ins from this address. Wait a minute and try again.';
    default:
      return problem.status ? `The LRS answered ${problem.status}: ${problem.message}.` : problem.message;
  }
}

/** Shows a message (or clears it with text = ''). kind: 'info' | 'error'. */
export function say(element, text, kind = 'info') {
  element.className = text ? `message ${kind}` : 'message';
  if (!text) {
    element.replaceChildren();
    return;
  }
  fill(element, kind === 'error' ? h('strong', {}, 'Error: ') : null, text);
}

// ----- formatting -----

const dateTime = new Intl.DateTimeFormat('en-GB', {dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC'});
const dateOnly = new Intl.DateTimeFormat('en-GB', {dateStyle: 'medium', timeZone: 'UTC'});

/** A time in UTC, without the zone: column headers say "(UTC)". */
export function formatDateTime(iso) {
  if (!iso) return '';
  const time = new Date(iso);
  return Number.isNaN(time.getTime()) ? iso : dateTime.format(time);
}

export function formatDate(iso) {
  if (!iso) return '';
  const time = new Date(iso);
  return Number.isNaN(time.getTime()) ? iso : dateOnly.format(time);
}

/** 5400000 → "1 h 30 min". */
export function formatDuration(ms) {
  if (!ms) return '—';
  const minutes = Math.round(ms / 60000);
  if (minutes < 1) return `${Math.round(ms / 1000)} s`;
  const hours = Math.floor(minutes / 60);
  return hours ? `${hours} h ${minutes % 60} min` : `${minutes} min`;
}

export function formatPercent(ratio, digits = 0) {
  return ratio === null || ratio === undefined || Number.isNaN(ratio) ? '—' : `${(ratio * 100).toFixed(digits)}%`;
}

export const formatNumber = (n) => new Intl.NumberFormat('en-GB').format(n);

// ----- CSV -----

function csvCell(value) {
  const text = value === null || value === undefined ? '' : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** CSV text from a header and rows (arrays). */
export function toCsv(header, rows) {
  return [header, ...rows].map((row) => row.map(csvCell).join(',')).join('\n') + '\n';
}

/** Offers text as a file download. */
export function download(filename, text, type = 'text/csv;charset=utf-8') {
  const url = URL.createObjectURL(new Blob([text], {type}));
  const link = h('a', {href: url, download: filename, hidden: true});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/**
 * A table with a caption, header cells and rows of cells (strings or
 * {text, class, content}). With `stack`, narrow screens show each row as a
 * block of "header: value" lines instead of a table scrolling sideways.
 */
export function table({caption, columns, rows, id, stack = false}) {
  const cell = (tag, value, extra = {}) =>
    value !== null && typeof value === 'object' && !(value instanceof Node)
      ? h(tag, {...extra, class: value.class, 'data-value': value.value}, value.content ?? value.text)
      : h(tag, extra, value);
  const label = (column) => (typeof column === 'object' ? column.text : column);
  return h(
    'div',
    {class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': caption},
    h(
      'table',
      {id, class: stack ? 'stack' : undefined},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, columns.map((c) => cell('th', c, {scope: 'col'})))),
      h(
        'tbody',
        {},
        rows.map((row) =>
          h('tr', {}, row.map((value, index) => cell(index === 0 ? 'th' : 'td', value, index === 0 ? {scope: 'row'} : {'data-label': label(columns[index])}))),
        ),
      ),
    ),
  );
}

/** Wires a sign-in form: calls onSignedIn() when a credential is present. */
export function signInForm({form, kind, read, onSignedIn}) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = read();
    if (!value) return;
    signIn(kind, value);
    onSignedIn();
  });
}
