/**
 * An EventBridge-compatible event pattern matcher for tests, following the content-filtering
 * rules of the EventBridge user guide: every field of the pattern must match; a leaf is an array of
 * alternatives; an event array matches when any element matches; `$or` holds sub-patterns of which
 * one must match. Supported filters: plain values, `prefix`, `suffix`, `equals-ignore-case`,
 * `exists`, and `anything-but` (a value, a list, or `{prefix}` / `{suffix}`). Anything else throws,
 * so a pattern using a filter this matcher does not model fails the test instead of passing it.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Pattern = { [key: string]: Json };

export class UnsupportedPattern extends Error {}

const isObject = (v: unknown): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isScalar = (v: unknown): v is null | boolean | number | string => v === null || ['boolean', 'number', 'string'].includes(typeof v);

/** True when `event` matches `pattern`. */
export function matches(pattern: Pattern, event: unknown): boolean {
  for (const [key, sub] of Object.entries(pattern)) {
    if (key === '$or') {
      if (!Array.isArray(sub) || sub.length < 2) throw new UnsupportedPattern('$or needs an array of at least two patterns');
      if (!sub.some((alt) => isObject(alt) && matches(alt, event))) return false;
      continue;
    }
    const value = isObject(event) ? event[key] : undefined;
    if (Array.isArray(sub)) {
      if (!matchesLeaf(sub, value)) return false;
    } else if (isObject(sub)) {
      // A missing object is matched against its sub-pattern as absent fields (so `exists: false` holds).
      if (Array.isArray(value)) {
        if (!value.some((v) => matches(sub, v))) return false;
      } else if (!matches(sub, value)) {
        return false;
      }
    } else {
      throw new UnsupportedPattern(`pattern field ${key} must be an array or an object`);
    }
  }
  return true;
}

function matchesLeaf(alternatives: Json[], value: Json | undefined): boolean {
  if (alternatives.length === 0) throw new UnsupportedPattern('empty array in pattern');
  return alternatives.some((alt) => matchesAlternative(alt, value));
}

function matchesAlternative(alt: Json, value: Json | undefined): boolean {
  if (isScalar(alt)) return anyValue(value, (v) => v === alt);
  if (!isObject(alt)) throw new UnsupportedPattern(`unsupported pattern value ${JSON.stringify(alt)}`);
  const keys = Object.keys(alt);
  if (keys.length !== 1) throw new UnsupportedPattern(`a filter has exactly one key: ${JSON.stringify(alt)}`);
  const [op] = keys;
  const arg = alt[op];
  switch (op) {
    case 'exists':
      if (typeof arg !== 'boolean') throw new UnsupportedPattern('exists takes a boolean');
      // EventBridge: exists matches leaf fields; an object or an absent field is "not existing".
      return arg ? value !== undefined && !isObject(value) : value === undefined || isObject(value);
    case 'prefix':
      if (typeof arg !== 'string') throw new UnsupportedPattern('prefix takes a string');
      return anyValue(value, (v) => typeof v === 'string' && v.startsWith(arg));
    case 'suffix':
      if (typeof arg !== 'string') throw new UnsupportedPattern('suffix takes a string');
      return anyValue(value, (v) => typeof v === 'string' && v.endsWith(arg));
    case 'equals-ignore-case':
      if (typeof arg !== 'string') throw new UnsupportedPattern('equals-ignore-case takes a string');
      return anyValue(value, (v) => typeof v === 'string' && v.toLowerCase() === arg.toLowerCase());
    case 'anything-but':
      return anythingBut(arg, value);
    default:
      throw new UnsupportedPattern(`filter ${op} is not modelled by this matcher`);
  }
}

/** anything-but matches only a present value that matches none of the excluded values. */
function anythingBut(arg: Json, value: Json | undefined): boolean {
  if (value === undefined || isObject(value)) return false;
  let excluded: (v: Json) => boolean;
  if (isScalar(arg)) excluded = (v) => v === arg;
  else if (Array.isArray(arg) && arg.every(isScalar)) excluded = (v) => isScalar(v) && (arg as Json[]).includes(v);
  else if (isObject(arg) && typeof arg.prefix === 'string' && Object.keys(arg).length === 1) {
    const p = arg.prefix;
    excluded = (v) => typeof v === 'string' && v.startsWith(p);
  } else if (isObject(arg) && typeof arg.suffix === 'string' && Object.keys(arg).length === 1) {
    const s = arg.suffix;
    excluded = (v) => typeof v === 'string' && v.endsWith(s);
  } else throw new UnsupportedPattern(`unsupported anything-but ${JSON.stringify(arg)}`);
  const values = Array.isArray(value) ? value : [value];
  return values.length > 0 && values.every((v) => !excluded(v));
}

function anyValue(value: Json | undefined, pred: (v: Json) => boolean): boolean {
  if (value === undefined) return false;
  return Array.isArray(value) ? value.some(pred) : pred(value);
}
