/**
 * A strict parser of the Prometheus text exposition format (0.0.4), for the tests of `GET /metrics`.
 *
 * Written here because the one parser on the registry (`parse-prometheus-text-format` 1.1.1) is not
 * maintained and reads prom-client's histograms wrongly (it drops their labels, `_sum` and `_count` when
 * `le` comes first, as prom-client writes it) while accepting garbage lines as samples. This one throws,
 * naming the line, on anything the format does not allow: a bad name, label or value, an unescaped
 * quote, a duplicate label or series, a `TYPE` after its samples or twice, a family split in two, a
 * counter below zero, a histogram without `+Inf`, with decreasing buckets or a `_count` that differs.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  /** The sample's own name (`x_bucket`, `x_sum`, … for a histogram `x`). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  type: MetricType;
  help: string | null;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
/** Go's `ParseFloat` syntax (which Prometheus uses) in decimal, with NaN and the infinities in any case (prom-client writes `Nan`). */
const FLOAT = /^(?:[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?)|nan)$/i;

/** Parses a whole exposition; throws with the line number on the first violation. */
export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the exposition does not end with a newline');
  const families = new Map<string, MetricFamily>();
  /** Families whose samples have been seen and are over: one may not come back. */
  const closed = new Set<string>();
  const series = new Set<string>();
  /** Families that had their TYPE line. */
  const typed = new Set<string>();
  let current: MetricFamily | null = null;

  const familyFor = (sampleName: string): MetricFamily | undefined => {
    for (const suffix of ['', '_bucket', '_sum', '_count']) {
      if (suffix !== '' && !sampleName.endsWith(suffix)) continue;
      const family = families.get(sampleName.slice(0, sampleName.length - suffix.length));
      if (family === undefined) continue;
      if (suffix === '' && family.type !== 'histogram') return family;
      if ((suffix === '_sum' || suffix === '_count') && (family.type === 'histogram' || family.type === 'summary')) return family;
      if (suffix === '_bucket' && family.type === 'histogram') return family;
    }
    return undefined;
  };

  const lines = text.split('\n');
  lines.pop();
  for (const [index, line] of lines.entries()) {
    const fail = (why: string): never => {
      throw new Error(`line ${index + 1}: ${why}: ${JSON.stringify(line)}`);
    };
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const match = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line);
      if (match === null) continue; // An ordinary comment.
      const [, keyword, name = '', rest = ''] = match;
      if (!METRIC_NAME.test(name)) fail('bad metric name');
      if (closed.has(name) || (current !== null && current.name !== name && families.has(name))) fail('family split in two');
      let family = families.get(name);
      if (family === undefined) {
        family = { name, type: 'untyped', help: null, samples: [] };
        families.set(name, family);
        if (current !== null && current.name !== name) closed.add(current.name);
        current = family;
      }
      if (keyword === 'HELP') {
        if (family.help !== null) fail('second HELP');
        family.help = unescape(rest, false, fail);
      } else {
        if (!TYPES.has(rest as MetricType)) fail('unknown TYPE');
        if (family.samples.length > 0) fail('TYPE after samples');
        if (typed.has(name)) fail('second TYPE');
        typed.add(name);
        family.type = rest as MetricType;
      }
      continue;
    }
    const sample = parseSample(line, fail);
    let family = familyFor(sample.name);
    if (family === undefined) {
      // A sample without TYPE: an untyped family of its own.
      if (families.has(sample.name)) fail('sample does not fit its family');
      family = { name: sample.name, type: 'untyped', help: null, samples: [] };
      families.set(sample.name, family);
    }
    if (closed.has(family.name)) fail('family split in two');
    if (current !== null && current !== family) closed.add(current.name);
    current = family;
    const key = `${sample.name}{${Object.entries(sample.labels)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(',')}}`;
    if (series.has(key)) fail('duplicate series');
    series.add(key);
    if (family.type === 'counter' && !(sample.value >= 0)) fail('counter below zero or NaN');
    if (family.type === 'histogram' && sample.name.endsWith('_bucket') && sample.labels.le === undefined) fail('bucket without le');
    family.samples.push(sample);
  }
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

/** Buckets cumulative and sorted by `le`, `+Inf` present and equal to `_count`, a `_sum` for each series. */
function checkHistogram(family: MetricFamily): void {
  const bySeries = new Map<string, { buckets: Array<[number, number]>; count?: number; sum?: number }>();
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort(([a], [b]) => (a < b ? -1 : 1)));
    const entry = bySeries.get(key) ?? { buckets: [] };
    bySeries.set(key, entry);
    if (sample.name === `${family.name}_bucket`) entry.buckets.push([parseFloatValue(le ?? ''), sample.value]);
    else if (sample.name === `${family.name}_count`) entry.count = sample.value;
    else if (sample.name === `${family.name}_sum`) entry.sum = sample.value;
    else throw new Error(`${family.name}: a histogram sample named ${sample.name}`);
  }
  for (const [key, entry] of bySeries) {
    const where = `${family.name} ${key}`;
    const sorted = [...entry.buckets].sort(([a], [b]) => a - b);
    if (sorted.at(-1)?.[0] !== Infinity) throw new Error(`${where}: no +Inf bucket`);
    for (let i = 1; i < sorted.length; i++) {
      if ((sorted[i] as [number, number])[1] < (sorted[i - 1] as [number, number])[1]) throw new Error(`${where}: buckets decrease`);
    }
    if (entry.count !== (sorted.at(-1) as [number, number])[1]) throw new Error(`${where}: _count differs from the +Inf bucket`);
    if (entry.sum === undefined) throw new Error(`${where}: no _sum`);
  }
}

function parseSample(line: string, fail: (why: string) => never): Sample {
  let at = 0;
  const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0] ?? fail('bad metric name');
  at = name.length;
  const labels: Record<string, string> = {};
  if (line[at] === '{') {
    at++;
    for (;;) {
      if (line[at] === '}') {
        at++;
        break;
      }
      const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(at))?.[0] ?? fail('bad label name');
      if (!LABEL_NAME.test(labelName)) fail('bad label name');
      at += labelName.length;
      if (line[at] !== '=' || line[at + 1] !== '"') fail('expected ="');
      at += 2;
      let raw = '';
      for (;;) {
        const char = line[at];
        if (char === undefined) fail('unterminated label value');
        if (char === '"') break;
        if (char === '\\') {
          raw += char + (line[at + 1] ?? fail('unterminated escape'));
          at += 2;
          continue;
        }
        raw += char;
        at++;
      }
      at++;
      if (Object.hasOwn(labels, labelName)) fail('duplicate label');
      labels[labelName] = unescape(raw, true, fail);
      if (line[at] === ',') at++;
      else if (line[at] !== '}') fail('expected , or }');
    }
  }
  const rest = line.slice(at);
  const match = /^[ \t]+(\S+)(?:[ \t]+(-?\d+))?[ \t]*$/.exec(rest) ?? fail('expected a value');
  const [, rawValue = ''] = match;
  if (!FLOAT.test(rawValue)) fail('bad value');
  return { name, labels, value: parseFloatValue(rawValue) };
}

function parseFloatValue(raw: string): number {
  if (/^\+?inf(inity)?$/i.test(raw)) return Infinity;
  if (/^-inf(inity)?$/i.test(raw)) return -Infinity;
  if (/^nan$/i.test(raw)) return NaN;
  if (!FLOAT.test(raw)) throw new Error(`bad number ${JSON.stringify(raw)}`);
  return Number(raw);
}

/** Undoes `\\`, `\n` (and `\"` in label values); any other escape is an error. */
function unescape(raw: string, quoted: boolean, fail: (why: string) => never): string {
  return raw.replace(/\\(.?)/g, (_, char: string) => {
    if (char === '\\') return '\\';
    if (char === 'n') return '\n';
    if (char === '"' && quoted) return '"';
    return fail(`bad escape \\${char}`);
  });
}

/** The value of the sample `name` whose labels include `labels`; throws when none or several match. */
export function sampleValue(families: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number {
  const matches = [...families.values()]
    .flatMap((family) => family.samples)
    .filter((sample) => sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v));
  if (matches.length !== 1) throw new Error(`${matches.length} samples ${name} ${JSON.stringify(labels)}`);
  return (matches[0] as Sample).value;
}

/** Like {@link sampleValue}, but 0 when the series does not exist yet (a counter or histogram never touched). */
export function valueOrZero(families: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number {
  const any = [...families.values()].flatMap((family) => family.samples).some((sample) => sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v));
  return any ? sampleValue(families, name, labels) : 0;
}
