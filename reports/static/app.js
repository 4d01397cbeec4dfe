// The reports dashboard: a report key, one of its programs and a range give totals, a chart, the
// rows as a table and a CSV of those rows. Plain ES2020, no framework, no build step.
//
// The page's Content-Security-Policy allows scripts, styles and requests to this origin only:
// nothing here writes markup from data (textContent only) or inline style attributes, and the
// key goes in an Authorization header, never in a URL. It lives in the tab's sessionStorage.

const KEY_STORAGE = 'reports.key';
const MAX_DAYS = { hour: 31, day: 366 }; // what the API accepts (CONTRACT.md, "Reporting")
const HOUR_MS = 3600 * 1000;
const NARROW = 600; // px: a chart narrower than this is shorter and has no axis titles
// The chart's lines: impressions on the left axis, clicks (two orders of magnitude fewer) and
// conversions (fewer still, but the same kind of small count) on the right one. Colours are
// style.css's custom properties `--c-<field with dashes>`.
const SERIES = [
  { field: 'impressions', label: 'Impressions', scale: 'impressions' },
  { field: 'billable_impressions', label: 'Billable impressions', scale: 'impressions' },
  { field: 'clicks', label: 'Clicks', scale: 'clicks' },
  { field: 'billable_clicks', label: 'Billable clicks', scale: 'clicks' },
  { field: 'conversions', label: 'Conversions', scale: 'clicks' },
].map((series) => ({ ...series, color: `c-${series.field.replace(/_/g, '-')}` }));

const $ = (id) => document.getElementById(id);
const integer = new Intl.NumberFormat();
const compact = new Intl.NumberFormat(undefined, { notation: 'compact' });
const percent = new Intl.NumberFormat(undefined, {
  style: 'percent', minimumFractionDigits: 2, maximumFractionDigits: 2,
});

let programs = []; // [{program_id, program_name}] of the key's customer
let shown = null; // {params, report, current}: what the page shows, what the CSV downloads
let chart = null; // the uPlot instance
let pending = null; // AbortController of the report request under way

// ---------------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.status = status;
  }
}

async function api(path, params = {}, { accept = 'application/json', signal } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  let response;
  try {
    response = await fetch(url, {
      headers: { Authorization: `Bearer ${storedKey()}`, Accept: accept },
      cache: 'no-store',
      credentials: 'omit',
      signal,
    });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError('Could not reach the reports service. Check the connection and try again.');
  }
  if (!response.ok) throw new ApiError(await errorMessage(response), response.status);
  return response;
}

async function errorMessage(response) {
  switch (response.status) {
    case 401:
      return 'Key not accepted. Check that you pasted all of it, or ask for a new key.';
    case 404:
      return 'This key has no such program.';
    case 429:
      return `Too many requests with this key. ${retryText(response.headers.get('Retry-After'))}`;
    case 503:
      return 'Reports temporarily unavailable. Try again in a minute.';
    default: {
      const detail = describeBody(await response.text());
      if (response.status === 400) return `The request was refused: ${detail || 'bad parameters'}.`;
      return `The reports service answered ${response.status}${detail ? `: ${detail}` : ''}.`;
    }
  }
}

// Retry-After is a number of seconds or an HTTP date.
function retryText(header) {
  if (header === null) return 'Try again later.';
  const text = header.trim();
  let seconds = /^\d+$/.test(text) ? Number(text) : (Date.parse(text) - Date.now()) / 1000;
  if (!Number.isFinite(seconds)) return 'Try again later.';
  seconds = Math.max(1, Math.ceil(seconds));
  const at = new Date(Date.now() + seconds * 1000)
    .toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const wait = seconds < 120 ? `${seconds} seconds` : `${Math.ceil(seconds / 60)} minutes`;
  return `Try again in ${wait} (at ${at}).`;
}

// The message of an error body: JSON such as {"error": "...", "parameter": "from"}, or text.
function describeBody(text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    return text.trim().slice(0, 300);
  }
  if (!body || typeof body !== 'object') return String(body);
  if (body.error && typeof body.error === 'object') body = body.error;
  const message = ['message', 'error', 'detail'].map((name) => body[name])
    .find((value) => typeof value === 'string');
  const parameter = typeof body.parameter === 'string' ? body.parameter : '';
  if (message && parameter && !message.includes(parameter)) return `${parameter}: ${message}`;
  return message || (parameter && `bad ${parameter}`) || text.trim().slice(0, 300);
}

// ---------------------------------------------------------------------------------------------
// The key

function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

// `adt_<key id>_<secret>`: the key id alone is no secret, and tells keys apart.
function keyId(key) {
  return key.split('_').slice(0, 2).join('_');
}

async function onKeySubmit(event) {
  event.preventDefault();
  const key = $('key-input').value.trim();
  if (!/^adt_[0-9a-f]+_\S+$/.test(key)) {
    showError('That is not a report key: a key starts with adt_ and is one long word.');
    return;
  }
  $('key-input').value = '';
  sessionStorage.setItem(KEY_STORAGE, key);
  await useKey();
}

async function useKey() {
  clearError();
  $('key-form').hidden = true;
  $('key-id').textContent = keyId(storedKey());
  $('key-status').hidden = false;
  try {
    await loadPrograms();
  } catch (error) {
    failed(error);
    return;
  }
  $('report-form').hidden = false;
  if (programs.length > 0) await showReport();
}

function forgetKey(message = 'Key forgotten.') {
  sessionStorage.removeItem(KEY_STORAGE);
  pending?.abort();
  programs = [];
  shown = null;
  chart?.destroy();
  chart = null;
  $('program').replaceChildren();
  $('report').hidden = true;
  $('report-form').hidden = true;
  $('key-status').hidden = true;
  $('key-form').hidden = false;
  setStatus(message);
  $('key-input').focus();
}

// Any failure: a key the service refuses is of no further use, so it is forgotten.
function failed(error) {
  if (error.name === 'AbortError') return;
  if (error.status === 401) forgetKey('');
  setStatus('');
  showError(error.message);
}

async function loadPrograms() {
  setStatus('Loading programs…');
  programs = await (await api('/v1/programs')).json();
  const name = (program) => program.program_name || program.program_id;
  programs.sort((a, b) => name(a).localeCompare(name(b)));
  const options = programs.map((program) => {
    const label = name(program) === program.program_id
      ? program.program_id
      : `${name(program)} (${program.program_id})`;
    return new Option(label, program.program_id);
  });
  $('program').replaceChildren(...options);
  setStatus(programs.length ? '' : 'This key has no programs yet.');
}

// ---------------------------------------------------------------------------------------------
// Dates, ranges and time zones

// The date (YYYY-MM-DD) it is now in `tz`.
function todayIn(tz) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit',
  }).formatToParts(new Date());
  const part = (type) => parts.find((p) => p.type === type).value;
  return `${part('year')}-${part('month')}-${part('day')}`;
}

function addDays(date, days) {
  const day = new Date(`${date}T00:00:00Z`);
  day.setUTCDate(day.getUTCDate() + days);
  return day.toISOString().slice(0, 10);
}

function daysIn(from, to) {
  return Math.round((Date.parse(to) - Date.parse(from)) / (24 * HOUR_MS)) + 1;
}

// The last `days` days, today included, in the selected zone.
function setRange(days) {
  const today = todayIn($('tz').value);
  $('from').value = addDays(today, 1 - days);
  $('to').value = today;
  checkRange();
}

function fillTimeZones() {
  const own = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  let zones = [];
  try {
    zones = Intl.supportedValuesOf('timeZone');
  } catch {
    // An older browser: UTC and its own zone
  }
  const all = [...new Set([...zones, 'UTC', own])].sort();
  $('tz').replaceChildren(...all.map((zone) => new Option(zone.replace(/_/g, ' '), zone)));
  $('tz').value = own;
}

function formParams() {
  const form = $('report-form');
  return {
    program: form.elements.program.value,
    from: form.elements.from.value,
    to: form.elements.to.value,
    granularity: form.elements.granularity.value,
    tz: form.elements.tz.value,
  };
}

// Why the API would refuse this range, or null.
function rangeProblem({ from, to, granularity }) {
  if (!from || !to) return 'Pick a first and a last day.';
  if (from > to) return 'The first day is after the last day.';
  const days = daysIn(from, to);
  const most = MAX_DAYS[granularity];
  if (days <= most) return null;
  const advice = granularity === 'hour' ? 'Pick “Day”, or fewer days.' : 'Pick fewer days.';
  return `By ${granularity}, a report covers at most ${most} days; this range has ${days}. `
    + advice;
}

function checkRange() {
  const problem = rangeProblem(formParams());
  $('range-error').textContent = problem || '';
  $('range-error').hidden = !problem;
  $('show').disabled = Boolean(problem);
  return problem;
}

// ---------------------------------------------------------------------------------------------
// The report

async function showReport() {
  const params = formParams();
  if (checkRange() || !params.program) return;
  pending?.abort();
  pending = new AbortController();
  clearError();
  setStatus('Loading the report…');
  $('report').setAttribute('aria-busy', 'true');
  try {
    const path = `/v1/reports/${encodeURIComponent(params.program)}`;
    const { from, to, granularity, tz } = params;
    const response = await api(path, { from, to, granularity, tz }, { signal: pending.signal });
    const report = await response.json();
    shown = { params, report, current: currentIndex(report) };
    render(shown);
    setStatus(`${report.rows.length} rows, as of ${new Date().toLocaleTimeString()}.`);
  } catch (error) {
    if (error.name !== 'AbortError') $('report').hidden = true; // no numbers under a wrong title
    failed(error);
  } finally {
    $('report').removeAttribute('aria-busy');
  }
}

// The index of the row still counting (it contains now), or -1.
function currentIndex({ rows, granularity, tz }) {
  if (granularity === 'day') {
    const today = todayIn(tz);
    return rows.findIndex((row) => row.period.slice(0, 10) === today);
  }
  const now = Date.now();
  const starts = rows.map((row) => Date.parse(row.period));
  return starts.findIndex((start, i) => start <= now && now < (starts[i + 1] ?? start + HOUR_MS));
}

function isFuture(row) {
  return Date.parse(row.period) > Date.now();
}

function render({ params, report, current }) {
  const program = programs.find((p) => p.program_id === report.program_id);
  const name = program?.program_name || report.program_id;
  $('report-title').textContent =
    `${name}: ${params.from} to ${params.to}, by ${report.granularity}, ${report.tz}`;
  $('report').hidden = false; // before the chart, which measures its box
  const currencies = currenciesOf(report);
  renderTotals(report.totals, currencies);
  renderChart(report, current);
  renderTable(report, current, currencies);
}

function sum(counts) {
  return Object.values(counts || {}).reduce((total, n) => total + Number(n), 0);
}

function ratio(part, whole) {
  return whole > 0 ? percent.format(part / whole) : '–';
}

// The currencies with revenue in the report's range, sorted: the API gives every row and the
// totals an amount of each (CONTRACT.md, "Reporting"), and none when there is no revenue.
function currenciesOf(report) {
  return Object.keys(report.totals.revenue || {}).sort();
}

// An amount of money is shown exactly as the API writes it, a decimal string ("12.5",
// "0.000001"): never made a float, which would round it, nor summed here.
function money(revenue, currency) {
  const amount = revenue?.[currency];
  return typeof amount === 'string' ? amount : '0';
}

// "IVT_KNOWN_CRAWLER" -> "known crawler"
function reasonName(reason) {
  return reason.replace(/^IVT_/, '').replace(/_/g, ' ').toLowerCase();
}

function renderTotals(totals, currencies) {
  const reasons = Object.entries(totals.ivt || {})
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([reason, n]) => `${reasonName(reason)} ${integer.format(n)}`);
  const values = {
    impressions: integer.format(totals.impressions),
    billable_impressions: integer.format(totals.billable_impressions),
    clicks: integer.format(totals.clicks),
    billable_clicks: integer.format(totals.billable_clicks),
    ctr: ratio(totals.billable_clicks, totals.billable_impressions),
    ctr_all: `all clicks: ${ratio(totals.clicks, totals.impressions)}`,
    uniques: integer.format(totals.uniques),
    ivt: integer.format(sum(totals.ivt)),
    ivt_reasons: reasons.join(' · '),
    conversions: integer.format(totals.conversions),
    unattributed_conversions: integer.format(totals.unattributed_conversions),
    events: integer.format(totals.events),
  };
  for (const element of $('totals').querySelectorAll('[data-metric]')) {
    const value = values[element.dataset.metric];
    if (value !== undefined) element.textContent = value;
  }
  renderRevenueCards(totals, currencies);
}

// A card per currency after the conversions' cards, those of the last report gone.
function renderRevenueCards(totals, currencies) {
  for (const card of $('totals').querySelectorAll('.revenue-card')) card.remove();
  const cards = currencies.map((currency) => {
    const card = document.createElement('div');
    card.className = 'card revenue-card';
    const term = document.createElement('dt');
    term.textContent = `Revenue, ${currency}`;
    const amount = document.createElement('dd');
    amount.dataset.metric = `revenue.${currency}`;
    amount.textContent = money(totals.revenue, currency);
    card.append(term, amount);
    return card;
  });
  $('unattributed-card').after(...cards);
}

// ---------------------------------------------------------------------------------------------
// The chart: one solid line per metric over the finished periods, and a dashed one from the last
// finished period to the one still counting (Plausible's way: an unfinished period is not a drop).

function cssColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function chartData(rows, current) {
  const data = [rows.map((row) => Date.parse(row.period) / 1000)];
  for (const { field } of SERIES) {
    const values = rows.map((row) => Number(row[field]) || 0);
    const finished = values.map((v, i) => (i !== current && !isFuture(rows[i]) ? v : null));
    const counting = values.map((v, i) => (i === current || i === current - 1 ? v : null));
    data.push(finished, counting);
  }
  return data;
}

function chartOptions(report, current, width) {
  const series = [{ label: 'Period' }];
  for (const { label, scale, color } of SERIES) {
    const stroke = cssColor(`--${color}`);
    series.push({ label, scale, stroke, width: 2 });
    series.push({
      label: `${label}, still counting`, scale, stroke, width: 2, dash: [5, 4],
      points: { show: true, size: 7, fill: cssColor('--c-surface') },
    });
  }
  const grid = { stroke: cssColor('--c-grid'), width: 1 };
  const narrow = width < NARROW;
  const axis = (scale, side, label) => ({
    scale, side, label: narrow ? '' : label, grid: side === 3 ? grid : { show: false },
    ticks: { show: false }, stroke: cssColor('--c-muted'), size: narrow ? 40 : 56,
    values: (u, ticks) => ticks.map((v) => compact.format(v)),
  });
  const fromZero = (u, min, max) => uPlot.rangeNum(0, Math.max(max, 1), 0.1, true);
  return {
    width,
    height: chartHeight(width),
    legend: { show: false },
    cursor: { points: { size: 7 }, drag: { x: false, y: false } },
    scales: { x: { time: true }, impressions: { range: fromZero }, clicks: { range: fromZero } },
    axes: [
      {
        stroke: cssColor('--c-muted'), grid, ticks: { show: false },
        size: report.granularity === 'day' ? 32 : 48, // one line of labels, or two
        splits: (u) => periodTicks(report, u.bbox.width / devicePixelRatio),
        values: (u, ticks) => tickLabels(report, ticks),
      },
      axis('impressions', 3, 'Impressions'),
      axis('clicks', 1, 'Clicks, conversions'),
    ],
    series,
    hooks: {
      drawClear: [(u) => shadeCounting(u, current)],
      setCursor: [(u) => showReadout(report, u.cursor.idx)],
    },
  };
}

// Ticks on period starts, every `step` periods, as many as fit: whole days for a daily report,
// and hours in steps that divide a day for an hourly one.
function periodTicks({ rows, granularity }, width) {
  const steps = granularity === 'day'
    ? [1, 2, 3, 4, 7, 14, 28, 56, 91]
    : [1, 2, 3, 6, 12, 24, 48, 168];
  const fit = Math.max(2, Math.floor(width / (granularity === 'day' ? 90 : 70)));
  const step = steps.find((s) => rows.length / s <= fit) ?? Math.ceil(rows.length / fit);
  return rows.map((row) => Date.parse(row.period) / 1000).filter((_, i) => i % step === 0);
}

// A day's name and date; an hour's time, with the date under it where a new day starts.
function tickLabels({ granularity, tz }, ticks) {
  const day = formatter({ weekday: 'short', month: 'short', day: 'numeric' }, tz);
  if (granularity === 'day') return ticks.map((t) => day.format(new Date(t * 1000)));
  const hour = formatter({ hour: '2-digit', minute: '2-digit' }, tz);
  let previous = '';
  return ticks.map((t) => {
    const date = day.format(new Date(t * 1000));
    const label = hour.format(new Date(t * 1000)) + (date === previous ? '' : `\n${date}`);
    previous = date;
    return label;
  });
}

// A light band under the dashed segment: the part of the chart that will still move.
function shadeCounting(u, current) {
  if (current < 0) return;
  const xs = u.data[0];
  const left = u.valToPos(xs[Math.max(current - 1, 0)], 'x', true);
  const right = u.valToPos(xs[current], 'x', true);
  const { ctx, bbox } = u;
  ctx.save();
  ctx.fillStyle = cssColor('--c-counting');
  ctx.fillRect(left, bbox.top, Math.max(right - left, 6 * devicePixelRatio), bbox.height);
  ctx.restore();
}

function renderChart(report, current) {
  const box = $('chart');
  chart?.destroy();
  box.replaceChildren();
  const names = SERIES.map((s) => s.label.toLowerCase()).join(', ');
  box.setAttribute('aria-label', `Chart of ${names} by ${report.granularity}; `
    + 'the table below has the same numbers.');
  const options = chartOptions(report, current, box.clientWidth);
  chart = new uPlot(options, chartData(report.rows, current), box);
  renderLegend(current);
  showReadout(report, null);
}

function renderLegend(current) {
  const items = SERIES.map(({ label, color }) => {
    const item = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = `swatch ${color}`;
    const value = document.createElement('span');
    value.className = 'legend-value';
    item.append(swatch, ` ${label} `, value);
    return item;
  });
  if (current >= 0) {
    const item = document.createElement('li');
    item.className = 'legend-counting';
    const swatch = document.createElement('span');
    swatch.className = 'swatch dashed';
    item.append(swatch, ' still counting');
    items.push(item);
  }
  $('legend').replaceChildren(...items);
}

// Under the cursor: the period and its numbers, in the legend.
function showReadout(report, index) {
  const row = index == null ? null : report.rows[index];
  $('readout').textContent = row
    ? periodLabel(row.period, report.granularity, report.tz, false)
    : '';
  $('legend').querySelectorAll('.legend-value').forEach((element, i) => {
    element.textContent = row ? integer.format(row[SERIES[i].field]) : '';
  });
}

function chartHeight(width) {
  return width < NARROW ? 220 : 300;
}

// A narrow chart drops its axis titles: it is made anew when the width crosses NARROW.
function resizeChart() {
  const width = $('chart').clientWidth;
  if (!chart || width === 0 || width === chart.width) return;
  if (width < NARROW === chart.width < NARROW) {
    chart.setSize({ width, height: chartHeight(width) });
  } else {
    renderChart(shown.report, shown.current);
  }
}

// ---------------------------------------------------------------------------------------------
// The table

const formatters = new Map();

// An Intl.DateTimeFormat of the browser's language for `tz`, made once.
function formatter(parts, tz) {
  const key = JSON.stringify([parts, tz]);
  if (!formatters.has(key)) {
    formatters.set(key, new Intl.DateTimeFormat(undefined, { ...parts, timeZone: tz }));
  }
  return formatters.get(key);
}

function periodLabel(period, granularity, tz, withOffset) {
  const parts = granularity === 'day'
    ? { weekday: 'short', year: 'numeric', month: 'short', day: 'numeric' }
    : { weekday: 'short', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' };
  if (withOffset) parts.timeZoneName = 'shortOffset';
  return formatter(parts, tz).format(new Date(period));
}

function cell(tag, text, className = 'num') {
  const element = document.createElement(tag);
  element.textContent = text;
  if (className) element.className = className;
  return element;
}

// A row's cells in the order of the table's head: index.html's columns, then a revenue column
// per currency.
function numberCells(counts, currencies) {
  return [
    integer.format(counts.impressions),
    integer.format(counts.billable_impressions),
    integer.format(counts.clicks),
    integer.format(counts.billable_clicks),
    ratio(counts.billable_clicks, counts.billable_impressions),
    integer.format(counts.uniques),
    integer.format(sum(counts.ivt)),
    integer.format(counts.events),
    integer.format(counts.conversions),
    integer.format(counts.unattributed_conversions),
    ...currencies.map((currency) => money(counts.revenue, currency)),
  ].map((text) => cell('td', text));
}

// The head's revenue columns, those of the last report gone.
function renderRevenueColumns(currencies) {
  const head = $('rows').tHead.rows[0];
  for (const column of head.querySelectorAll('.revenue-column')) column.remove();
  head.append(...currencies.map((currency) => {
    const column = cell('th', `Revenue ${currency}`, 'num revenue-column');
    column.scope = 'col';
    return column;
  }));
}

function renderTable(report, current, currencies) {
  renderRevenueColumns(currencies);
  // Around a DST change two hours read alike: the offset tells them apart.
  const offsets = new Set(report.rows.map((row) => row.period.match(/(Z|[+-][\d:]+)$/)?.[0]));
  const withOffset = report.granularity === 'hour' && offsets.size > 1;
  const rows = report.rows.map((row, i) => {
    const tr = document.createElement('tr');
    const period = cell('th', '', 'period');
    period.scope = 'row';
    const time = document.createElement('time');
    time.dateTime = row.period;
    time.textContent = periodLabel(row.period, report.granularity, report.tz, withOffset);
    period.append(time);
    if (i === current) {
      tr.className = 'counting';
      period.append(' ', cell('span', 'still counting', 'tag'));
    } else if (isFuture(row)) {
      tr.className = 'future';
    }
    tr.append(period, ...numberCells(row, currencies));
    return tr;
  });
  $('rows').tBodies[0].replaceChildren(...rows);

  const total = document.createElement('tr');
  const label = cell('th', 'Total', 'period');
  label.scope = 'row';
  total.append(label, ...numberCells(report.totals, currencies));
  $('rows').tFoot.replaceChildren(total);
}

// ---------------------------------------------------------------------------------------------
// The CSV: the API's own CSV of the rows on screen, fetched with the key and saved as a file.

async function downloadCsv() {
  if (!shown) return;
  const { program, from, to, granularity, tz } = shown.params;
  const button = $('download');
  button.disabled = true;
  clearError();
  try {
    const path = `/v1/reports/${encodeURIComponent(program)}`;
    const query = { from, to, granularity, tz, format: 'csv' };
    const response = await api(path, query, { accept: 'text/csv' });
    const blob = new Blob([await response.blob()], { type: 'text/csv' });
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = `report-${program}-${from}-to-${to}-by-${granularity}.csv`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60 * 1000);
  } catch (error) {
    failed(error);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Messages

function setStatus(text) {
  $('status').textContent = text;
}

function showError(text) {
  $('error').textContent = text;
  $('error').hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

// ---------------------------------------------------------------------------------------------

function start() {
  fillTimeZones();
  setRange(7);
  $('key-form').addEventListener('submit', onKeySubmit);
  $('forget-key').addEventListener('click', () => forgetKey());
  $('report-form').addEventListener('submit', (event) => {
    event.preventDefault();
    showReport();
  });
  $('report-form').addEventListener('change', checkRange);
  for (const button of document.querySelectorAll('[data-days]')) {
    button.addEventListener('click', () => setRange(Number(button.dataset.days)));
  }
  $('download').addEventListener('click', downloadCsv);
  new ResizeObserver(resizeChart).observe($('chart'));
  if (storedKey()) {
    useKey();
  } else {
    $('key-form').hidden = false;
  }
}

start();
