import { ArgumentError } from './errors.js';

/**
 * The keys an options type allows, declared once next to the type: `keys` must name every key of
 * `T` and nothing else (a missing or extra key is a compile error, since `Record<keyof T, true>`
 * makes every key required and an object literal may not add any), so the runtime list can never
 * drift from the interface.
 * @example export const FORWARD_OPTION_KEYS = optionKeys<ForwardOptions>({ out: true, ... });
 */
export function optionKeys<T extends object>(keys: Record<keyof T & string, true>): readonly (keyof T & string)[] {
  // Object.keys types its result as string[]; the Record parameter guarantees these are T's keys.
  return Object.freeze(Object.keys(keys) as (keyof T & string)[]);
}

function nonObjectError(options: unknown, argument: string): ArgumentError {
  return new ArgumentError(`${argument} must be an object or null, got ${Array.isArray(options) ? 'an array' : typeof options}`);
}

/**
 * Rejects an options object with a key outside `allowedKeys`, so that a typo (`epilog`,
 * `momentom`) is an error instead of a silently ignored option. Call it before any allocation or
 * GPU work. `undefined` and `null` (no options) pass.
 * @param where names the argument in the message, e.g. `'BatchNorm2d.forward options'`.
 * @throws ArgumentError naming the unknown keys and listing the allowed ones; ArgumentError for a
 *   non-object.
 */
export function rejectUnknownKeys(options: unknown, allowedKeys: readonly string[], where: string): void {
  if (options === undefined || options === null) return;
  if (typeof options !== 'object' || Array.isArray(options)) throw nonObjectError(options, where);
  const unknown = Object.keys(options).filter((key) => !allowedKeys.includes(key));
  if (unknown.length === 0) return;
  const names = unknown.map((key) => `'${key}'`).join(', ');
  const allowed = allowedKeys.length > 0 ? allowedKeys.map((key) => `'${key}'`).join(', ') : 'none';
  throw new ArgumentError(`${where}: unknown option${unknown.length > 1 ? 's' : ''} ${names}; allowed: ${allowed}`);
}

/**
 * An options argument: `undefined` and `null` both mean "no options"; anything else must be a
 * plain object, and with `allowedKeys` (see {@link optionKeys}) it may hold only those keys.
 * @throws ArgumentError for a non-object (a number, a string, an array ...) or an unknown key.
 */
export function optionsObject<T extends object>(
  options: T | null | undefined,
  argument: string,
  allowedKeys?: readonly (keyof T & string)[],
): Partial<T> {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) throw nonObjectError(options, argument);
  if (allowedKeys) rejectUnknownKeys(options, allowedKeys, argument);
  return options;
}
