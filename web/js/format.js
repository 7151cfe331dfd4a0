// Formatting of catalog values for people: sizes, dates, confidences, file names.

// "10 kB", "2.7 MB": decimal units, as file managers show them.
export function formatBytes(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n) || n < 0) return '';
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toPrecision(3).replace(/\.0+$|(\.\d*?)0+$/, '$1')} ${units[unit]}`;
}

// "2014-01-31T08:17:59" -> "31 Jan 2014, 08:17" (the instrument's own clock: no time-zone shift).
export function formatDate(iso, { time = true } = {}) {
  if (!iso) return '';
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}))?/.exec(String(iso));
  if (!match) return String(iso);
  const [, y, mo, d, hh, mm] = match;
  const month = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][
    Number(mo) - 1
  ];
  if (!month) return String(iso);
  const day = `${Number(d)} ${month} ${y}`;
  return time && hh !== undefined ? `${day}, ${hh}:${mm}` : day;
}

// 0.983 -> "98%"; null when there is no confidence.
export function formatConfidence(confidence) {
  const c = Number(confidence);
  if (confidence === null || confidence === undefined || !Number.isFinite(c)) return null;
  return `${Math.round(Math.max(0, Math.min(1, c)) * 100)}%`;
}

// "180000" -> "180k", "7200000" -> "7.2M".
export function formatNumber(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value ?? '');
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${+(n / 1e9).toPrecision(3)}G`;
  if (abs >= 1e6) return `${+(n / 1e6).toPrecision(3)}M`;
  if (abs >= 1e4) return `${+(n / 1e3).toPrecision(3)}k`;
  return String(+n.toPrecision(6));
}

// A length in metres as people read it: 5.4e-10 m -> "543 pm", 2.1e-9 -> "2.1 nm". Other units
// (px, 1/nm, ...) are shown as given.
export function formatLength(value, units) {
  const n = Number(value);
  if (!Number.isFinite(n)) return '';
  if (units && units !== 'm') return `${formatNumber(n)} ${units}`;
  const scales = [[1, 'm'], [1e-3, 'mm'], [1e-6, 'µm'], [1e-9, 'nm'], [1e-12, 'pm']];
  const [scale, unit] = scales.find(([s]) => Math.abs(n) >= s) || scales[scales.length - 1];
  return `${+(n / scale).toPrecision(3)} ${unit}`;
}

export function baseName(path) {
  const parts = String(path || '').split(/[\\/]/);
  return parts[parts.length - 1] || String(path || '');
}

export function parentFolder(path) {
  const parts = String(path || '').split(/[\\/]/).filter(Boolean);
  return parts.length >= 2 ? parts[parts.length - 2] : '';
}

// The sample a session folder names: users type "20111013 - PbSe with ligands" or
// "2011-10-13_PbSe"; the leading date and separators are dropped. "" when the folder is only a date.
export function sampleFromFolder(folder) {
  const text = String(folder || '')
    .replace(/^\s*\d{4}[-_.]?\d{2}[-_.]?\d{2}\s*[-_–:]*\s*/, '')
    .replace(/[_]+/g, ' ')
    .trim();
  return /\p{L}/u.test(text) ? text : '';
}

// A readable title of a dataset: the file name without its extension, and the sample of its folder.
export function readableTitle(title, path) {
  const name = String(title || baseName(path));
  return { name, sample: sampleFromFolder(parentFolder(path)) };
}

export function plural(n, one, many = `${one}s`) {
  return `${Number(n).toLocaleString('en')} ${n === 1 ? one : many}`;
}
