// Charts drawn as inline SVG, each with a title, a description and an
// accessible name; the numbers are always in a table beside them too.

import {h, s, formatNumber} from './common.js';

let chartCount = 0;

/** A "nice" upper bound for an axis: 1, 2 or 5 × 10^n at or above max. */
function niceMax(max) {
  if (max <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= max) return step * power;
  }
  return 10 * power;
}

function ticks(max, count = 4) {
  const top = niceMax(max);
  const step = top / count;
  return Array.from({length: count + 1}, (_, i) => Math.round(i * step * 100) / 100);
}

/**
 * Vertical bars over periods.
 * options: {title, labels: [...], values: [...], unit, color, width}
 */
export function barChart({title, labels, values, unit, color = '#005eb8', width = 560}) {
  const id = `chart-${++chartCount}`;
  const height = 240;
  const margin = {top: 12, right: 12, bottom: 48, left: 48};
  const plotWidth = Math.max(120, width - margin.left - margin.right);
  const plotHeight = height - margin.top - margin.bottom;
  const max = Math.max(0, ...values);
  const axis = ticks(max);
  const top = axis[axis.length - 1] || 1;
  const slot = labels.length ? plotWidth / labels.length : plotWidth;
  const barWidth = Math.max(1, Math.min(48, slot * 0.7));
  // Label at most ~one period per 56 px.
  const every = Math.max(1, Math.ceil(labels.length / Math.max(1, Math.floor(plotWidth / 56))));
  const y = (v) => margin.top + plotHeight - (v / top) * plotHeight;
  const summary = labels.length
    ? `${title}: ${labels.length} periods from ${labels[0]} to ${labels[labels.length - 1]}, highest ${formatNumber(max)} ${unit}.`
    : `${title}: no data for the chosen filters.`;
  const svg = s(
    'svg',
    {
      class: 'chart',
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-labelledby': `${id}-title`,
      'aria-describedby': `${id}-desc`,
      'data-chart': title,
    },
    s('title', {id: `${id}-title`}, title),
    s('desc', {id: `${id}-desc`}, summary),
    axis.map((tick) =>
      s(
        'g',
        {},
        s('line', {class: 'grid', x1: margin.left, x2: margin.left + plotWidth, y1: y(tick), y2: y(tick)}),
        s('text', {x: margin.left - 6, y: y(tick) + 4, 'text-anchor': 'end'}, formatNumber(tick)),
      ),
    ),
    labels.map((label, i) => {
      const x = margin.left + slot * i + (slot - barWidth) / 2;
      const value = values[i];
      return s(
        'g',
        {class: 'bar'},
        s(
          'rect',
          {x, y: y(value), width: barWidth, height: Math.max(0, margin.top + plotHeight - y(value)), fill: color},
          s('title', {}, `${label}: ${formatNumber(value)} ${unit}`),
        ),
        i % every === 0
          ? s(
              'text',
              {
                x: x + barWidth / 2,
                y: margin.top + plotHeight + 16,
                'text-anchor': labels.length > 6 ? 'end' : 'middle',
                transform: labels.length > 6 ? `rotate(-35 ${x + barWidth / 2} ${margin.top + plotHeight + 16})` : undefined,
              },
              label,
            )
          : null,
      );
    }),
    labels.length ? null : s('text', {class: 'empty', x: margin.left + plotWidth / 2, y: margin.top + plotHeight / 2, 'text-anchor': 'middle'}, 'No data'),
    s('line', {class: 'axis', x1: margin.left, x2: margin.left + plotWidth, y1: y(0), y2: y(0)}),
  );
  return h('figure', {}, h('figcaption', {id: `${id}-caption`}, title), svg);
}

/**
 * Horizontal bars, one per item, in groups.
 * options: {title, groups: [{name, items: [{label, value}]}], unit, max, width}
 */
export function horizontalBars({title, groups, unit, width = 560, color = '#005eb8'}) {
  const id = `chart-${++chartCount}`;
  const rowHeight = 24;
  const groupHeight = 26;
  const labelWidth = Math.min(260, Math.floor(width * 0.45));
  const valueWidth = 48;
  const plotWidth = Math.max(60, width - labelWidth - valueWidth - 8);
  const values = groups.flatMap((g) => g.items.map((i) => i.value));
  const top = niceMax(Math.max(0, ...values));
  let cursor = 4;
  const parts = [];
  const clip = (text, room) => {
    const chars = Math.max(6, Math.floor(room / 6.6));
    return text.length > chars ? `${text.slice(0, chars - 1)}…` : text;
  };
  for (const group of groups) {
    parts.push(s('text', {x: 0, y: cursor + 17, 'font-weight': 700}, clip(group.name, width)));
    cursor += groupHeight;
    for (const item of group.items) {
      const barLength = (item.value / top) * plotWidth;
      parts.push(
        s(
          'g',
          {class: 'bar'},
          s('text', {x: labelWidth - 8, y: cursor + 16, 'text-anchor': 'end'}, clip(item.label, labelWidth - 8)),
          s(
            'rect',
            {x: labelWidth, y: cursor + 4, width: Math.max(item.value ? 2 : 0, barLength), height: rowHeight - 8, fill: color},
            s('title', {}, `${group.name} — ${item.label}: ${formatNumber(item.value)} ${unit}`),
          ),
          s('text', {x: labelWidth + barLength + 6, y: cursor + 16}, formatNumber(item.value)),
        ),
      );
      cursor += rowHeight;
    }
  }
  const height = Math.max(40, cursor + 8);
  const total = values.length;
  const svg = s(
    'svg',
    {class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': `${id}-title`,
      'aria-describedby': `${id}-desc`, 'data-chart': title},
    s('title', {id: `${id}-title`}, title),
    s('desc', {id: `${id}-desc`}, total ? `${title}: ${total} bars in ${groups.length} groups.` : `${title}: no data.`),
    s('line', {class: 'axis', x1: labelWidth, x2: labelWidth, y1: 0, y2: height}),
    parts,
    total ? null : s('text', {class: 'empty', x: width / 2, y: 24, 'text-anchor': 'middle'}, 'No data'),
  );
  return h('figure', {}, h('figcaption', {}, title), svg);
}

/** The width charts in `container` should be drawn at (its inner width). */
export function chartWidth(container, columns = 1) {
  const width = container.clientWidth || 560;
  const gap = 16 * (columns - 1);
  return Math.max(280, Math.floor((width - gap) / columns) - 26);
}
