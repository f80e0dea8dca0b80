// LogQL for the editor: a tolerant tokenizer (it never fails; the server's
// parser is the judge of validity) used for highlighting, and the
// completion context at the cursor (label name, label value, pipeline
// stage or function).

export const RANGE_FUNCTIONS = [
  'rate', 'count_over_time', 'bytes_rate', 'bytes_over_time', 'absent_over_time', 'sum_over_time',
  'avg_over_time', 'max_over_time', 'min_over_time', 'first_over_time', 'last_over_time',
  'stdvar_over_time', 'stddev_over_time', 'quantile_over_time', 'rate_counter',
];
export const AGGREGATIONS = ['sum', 'avg', 'min', 'max', 'stddev', 'stdvar', 'count', 'topk', 'bottomk', 'sort', 'sort_desc', 'approx_topk'];
const OTHER_FUNCTIONS = ['label_replace', 'vector'];
export const PIPELINE_STAGES = [
  'json', 'logfmt', 'regexp', 'pattern', 'unpack', 'line_format', 'label_format', 'drop', 'keep',
  'decolorize', 'unwrap',
];
const KEYWORDS = [
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset',
  'ip', 'duration', 'duration_seconds', 'bytes',
];

const FUNCTIONS = new Set([...RANGE_FUNCTIONS, ...AGGREGATIONS, ...OTHER_FUNCTIONS]);
const WORDS = new Set([...PIPELINE_STAGES, ...KEYWORDS]);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const TWO_CHAR_OPS = ['|=', '|~', '|>', '!=', '!~', '!>', '=~', '==', '>=', '<='];

/**
 * Tokens covering the whole text: {type, start, end, text}. Types: space,
 * comment, string (with `closed`), number, duration, function, keyword,
 * ident, op, pipe, punct.
 */
export function tokenize(src) {
  const out = [];
  const n = src.length;
  let i = 0;
  const push = (type, start, extra) => out.push({ type, start, end: i, text: src.slice(start, i), ...extra });
  while (i < n) {
    const start = i;
    const c = src[i];
    if (/\s/.test(c)) {
      while (i < n && /\s/.test(src[i])) i++;
      push('space', start);
    } else if (c === '#') {
      while (i < n && src[i] !== '\n') i++;
      push('comment', start);
    } else if (c === '"' || c === '`') {
      i++;
      while (i < n && src[i] !== c) {
        if (c === '"' && src[i] === '\\') i++;
        i++;
      }
      const closed = i < n;
      if (closed) i++;
      else i = n;
      push('string', start, { closed });
    } else if (/[0-9]/.test(c)) {
      while (i < n && /[0-9.]/.test(src[i])) i++;
      let unit = false;
      while (i < n && /[a-zA-Z0-9]/.test(src[i])) {
        unit = true;
        i++;
      }
      push(unit ? 'duration' : 'number', start);
    } else if (/[a-zA-Z_]/.test(c)) {
      while (i < n && /[a-zA-Z0-9_]/.test(src[i])) i++;
      const word = src.slice(start, i);
      push(FUNCTIONS.has(word) ? 'function' : WORDS.has(word) ? 'keyword' : 'ident', start);
    } else if (TWO_CHAR_OPS.includes(src.slice(i, i + 2))) {
      i += 2;
      push('op', start);
    } else if (c === '|') {
      i++;
      push('pipe', start);
    } else if ('{}()[],'.includes(c)) {
      i++;
      push('punct', start);
    } else {
      i++;
      push('op', start);
    }
  }
  return out;
}

/** True when the query is a log query (a selector first), false for metrics. */
export function isLogQuery(src) {
  const first = tokenize(src).find((t) => t.type !== 'space' && t.type !== 'comment');
  return !!first && first.text === '{';
}

/** The text of a string token, unquoted (escapes of `"` strings undone). */
export function unquote(token) {
  const body = token.text.slice(1, token.closed ? -1 : undefined);
  return token.text[0] === '`' ? body : body.replace(/\\(.)/g, '$1');
}

/**
 * What to complete at `cursor`: null, or {kind, prefix, from, to, label,
 * op, inString}. kind is 'labelName', 'labelValue', 'stage' (after `|`) or
 * 'function'; [from, to) is the text a completion replaces.
 */
export function completionContext(src, cursor, explicit = false) {
  const tokens = tokenize(src.slice(0, cursor));
  let brace = 0;
  const parens = []; // for each open paren: opened after a grouping keyword?
  let prevSignificant = null;
  const significant = [];
  for (const t of tokens) {
    if (t.type === 'space' || t.type === 'comment') continue;
    if (t.text === '{') brace++;
    else if (t.text === '}') brace = Math.max(0, brace - 1);
    else if (t.text === '(') parens.push(prevSignificant !== null && GROUPING.has(prevSignificant.text));
    else if (t.text === ')') parens.pop();
    significant.push(t);
    prevSignificant = t;
  }
  const last = tokens[tokens.length - 1];
  const sig = (k) => significant[significant.length - 1 - k];
  const inGrouping = parens.length > 0 && parens[parens.length - 1];

  // Inside an unfinished string: a label value.
  if (last && last.type === 'string' && !last.closed) {
    const op = sig(1);
    const label = sig(2);
    if (!op || op.type !== 'op' || !label || label.type !== 'ident') return null;
    return { kind: 'labelValue', label: label.text, op: op.text, prefix: unquote(last), from: last.start + 1, to: cursor, inString: true };
  }
  const word = last && (last.type === 'ident' || last.type === 'keyword' || last.type === 'function') ? last : null;
  const before = word ? sig(1) : sig(0);
  const prefix = word ? word.text : '';
  const from = word ? word.start : cursor;
  const ctx = (kind, extra) => ({ kind, prefix, from, to: cursor, ...extra });
  if (brace > 0 || inGrouping) {
    if (!before || before.text === '{' || before.text === ',' || before.text === '(') return ctx('labelName');
    if (!word && before.type === 'op' && ['=', '!=', '=~', '!~'].includes(before.text)) {
      const label = sig(1);
      if (label && label.type === 'ident') return ctx('labelValue', { label: label.text, op: before.text, inString: false });
    }
    return null;
  }
  if (before && before.type === 'pipe') return ctx('stage');
  if (before && before.type === 'op' && ['=', '!=', '=~', '!~'].includes(before.text) && !word) {
    // A label filter in the pipeline: `| level="...`
    const label = sig(1);
    if (label && label.type === 'ident') return ctx('labelValue', { label: label.text, op: before.text, inString: false });
  }
  if (word || explicit) return ctx('function');
  return null;
}

const REGEX_META = /[.*+?^${}()|[\]\\]/g;

/** The text a chosen label value is inserted as. */
export function valueInsertion(value, ctx) {
  const v = ctx.op === '=~' || ctx.op === '!~' ? value.replace(REGEX_META, '\\$&') : value;
  const escaped = v.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  return ctx.inString ? `${escaped}"` : `"${escaped}"`;
}

/** Completion items for function context: functions, then keywords. */
export function functionItems() {
  return [
    ...RANGE_FUNCTIONS.map((f) => ({ text: f, detail: 'range aggregation', insert: `${f}(` })),
    ...AGGREGATIONS.map((f) => ({ text: f, detail: 'aggregation', insert: `${f}(` })),
    ...OTHER_FUNCTIONS.map((f) => ({ text: f, detail: 'function', insert: `${f}(` })),
    ...['by', 'without'].map((f) => ({ text: f, detail: 'grouping', insert: `${f} (` })),
  ];
}

export function stageItems() {
  return PIPELINE_STAGES.map((s) => ({ text: s, detail: 'stage', insert: s }));
}
