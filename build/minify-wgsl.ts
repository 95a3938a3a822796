/**
 * Build-time identifier minification of the shipped WGSL: every name the shaders declare (functions,
 * structs, aliases, constants, variables, parameters, struct members) becomes a one- or two-letter
 * name, one map for all files, so a file shared by several modules is still one string in the
 * bundle. The names the host uses stay: compute entry points and overrides (pipelines and their
 * constants are created by name). Binding and uniform-member names may change because the host
 * never sees them in the code: it binds by the numbers and packs by the offsets that
 * build/reflect-wgsl.ts reads from the source before renaming.
 *
 * The renaming is a bijection on identifiers, disjoint from every name left alone, so scoping and
 * shadowing resolve exactly as in the source: the minified module is the source with other names.
 * Members live in their own namespace and are renamed only where they are members (inside a struct
 * body and after `.`); names a vector swizzle or a built-in result struct could read after `.`
 * are never members to rename. Lines are kept, so Dawn's line numbers still match the files.
 */

/** WGSL keywords and the reserved words short enough to be generated (WGSL §15.2, §15.3). */
const RESERVED_SHORT = new Set([
  'as',
  'do',
  'fn',
  'if',
  'of',
  'for',
  'let',
  'var',
  'asm',
  'get',
  'mod',
  'mut',
  'new',
  'nil',
  'pub',
  'ref',
  'set',
  'std',
  'try',
  'use',
]);

/**
 * Predeclared WGSL types and enumerants that a declaration could shadow: a declared name among
 * them is left alone, since a global rename would also rename the type or enumerant wherever it is
 * used unshadowed. Built-in functions need no list: a declared name that stands anywhere in call
 * position (`name(`, `name<`) without being a declared fn, struct or alias is left alone (see
 * minifyWgsl), which covers every built-in function a local might shadow (`sign`, `step`, ...).
 */
const PREDECLARED = new Set(
  (
    'bool f16 f32 i32 u32 vec2 vec3 vec4 vec2f vec3f vec4f vec2i vec3i vec4i vec2u vec3u vec4u vec2h vec3h vec4h ' +
    'mat2x2 mat2x3 mat2x4 mat3x2 mat3x3 mat3x4 mat4x2 mat4x3 mat4x4 mat2x2f mat2x3f mat2x4f mat3x2f mat3x3f mat3x4f ' +
    'mat4x2f mat4x3f mat4x4f mat2x2h mat2x3h mat2x4h mat3x2h mat3x3h mat3x4h mat4x2h mat4x3h mat4x4h array atomic ptr ' +
    'sampler sampler_comparison read write read_write function private workgroup uniform storage'
  ).split(' '),
);

/** Names `.` can read that no struct of ours declares: swizzles and built-in result members. */
function readableAfterDot(name: string): boolean {
  return /^(?:[xyzw]{1,4}|[rgba]{1,4})$/.test(name) || ['fract', 'whole', 'exp', 'old_value', 'exchanged'].includes(name);
}

const IDENT = /\b[A-Za-z_]\w*/g;

/**
 * `count` short names in order, a..z, A..Z, then two characters, skipping reserved words and the
 * names in `taken` (3,276 at most; the shaders need about 500).
 */
function shortNames(taken: ReadonlySet<string>, count: number): string[] {
  const first = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
  const rest = `${first}0123456789_`;
  const out: string[] = [];
  const offer = (name: string): boolean => {
    if (!taken.has(name) && !RESERVED_SHORT.has(name)) out.push(name);
    return out.length === count;
  };
  if (count === 0) return out;
  for (const a of first) if (offer(a)) return out;
  for (const a of first) for (const b of rest) if (offer(a + b)) return out;
  throw new Error(`minify-wgsl: ${count} names do not fit in two characters`);
}

/** The character spans of struct bodies (`struct Name { ... }`, never nested in WGSL). */
function structBodies(text: string): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  for (const m of text.matchAll(/\bstruct\s+\w+\s*\{/g)) {
    const start = (m.index ?? 0) + m[0].length;
    spans.push([start, text.indexOf('}', start)]);
  }
  return spans;
}

interface Occurrence {
  readonly name: string;
  readonly index: number;
  /** `dot`: after `.`; `member`: a struct member's declared name; `plain`: any other identifier. */
  readonly kind: 'dot' | 'member' | 'plain';
  /** After `@` (an attribute name), or inside `@builtin(...)` / `enable` / `requires` / `diagnostic(...)`. */
  readonly fixed: boolean;
  /** Directly followed by `(` or `<`: a call, a constructor or a template. */
  readonly call: boolean;
}

function occurrences(text: string): Occurrence[] {
  const bodies = structBodies(text);
  const fixedSpans: Array<[number, number]> = [];
  for (const m of text.matchAll(/@builtin\([^)]*\)|\b(?:enable|requires)\b[^;]*;|\bdiagnostic\s*\([^)]*\)/g)) {
    fixedSpans.push([m.index ?? 0, (m.index ?? 0) + m[0].length]);
  }
  const inside = (spans: Array<[number, number]>, i: number): boolean => spans.some(([a, b]) => i >= a && i < b);
  const found: Occurrence[] = [];
  for (const m of text.matchAll(IDENT)) {
    const index = m.index ?? 0;
    const before = text.slice(0, index).trimEnd().at(-1);
    const after = text.slice(index + m[0].length);
    const memberDecl = inside(bodies, index) && /^\s*:(?!:)/.test(after);
    found.push({
      name: m[0],
      index,
      kind: before === '.' ? 'dot' : memberDecl ? 'member' : 'plain',
      fixed: before === '@' || inside(fixedSpans, index),
      call: /^[(<]/.test(after),
    });
  }
  return found;
}

/** Names declared outside struct bodies: after fn/struct/alias/let/const/var/override, or before a `:` (parameters, typed declarations). */
function declaredNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/\b(?:fn|struct|alias|let|const|var|override)(?:\s*<[^>]*>\s*|\s+)([A-Za-z_]\w*)/g)) names.add(m[1] ?? '');
  const bodies = structBodies(text);
  for (const m of text.matchAll(/\b([A-Za-z_]\w*)\s*:(?!:)/g)) {
    const i = m.index ?? 0;
    if (!bodies.some(([a, b]) => i >= a && i < b)) names.add(m[1] ?? '');
  }
  names.delete('default');
  return names;
}

export interface MinifiedWgsl {
  /** Each file's minified text, by file name. */
  readonly files: ReadonlyMap<string, string>;
  /** Declared (non-member) names: source name → shipped name. */
  readonly names: ReadonlyMap<string, string>;
  /** Struct members: source name → shipped name. */
  readonly members: ReadonlyMap<string, string>;
}

/**
 * Minifies `files` (already compacted, see compactWgsl) with one map for all of them, keeping the
 * names in `keep` (entry points and overrides) and everything the shaders do not declare.
 */
export function minifyWgsl(files: ReadonlyMap<string, string>, keep: ReadonlySet<string>): MinifiedWgsl {
  const declared = new Set<string>();
  const callable = new Set<string>();
  const declaredMembers = new Set<string>();
  const fixedNames = new Set<string>();
  const all = new Map<string, Occurrence[]>();
  for (const [file, text] of files) {
    const occ = occurrences(text);
    all.set(file, occ);
    for (const n of declaredNames(text)) declared.add(n);
    for (const m of text.matchAll(/\b(?:fn|struct|alias)\s+([A-Za-z_]\w*)/g)) callable.add(m[1] ?? '');
    for (const o of occ) {
      if (o.fixed) fixedNames.add(o.name);
      if (o.kind === 'member') declaredMembers.add(o.name);
    }
  }
  // A call of a name that is no fn, struct or alias of ours is a call of a built-in that some
  // declaration shadows elsewhere (a local `sign` beside calls of sign()): that name stays.
  for (const occ of all.values()) {
    for (const o of occ) if (o.kind === 'plain' && o.call && !callable.has(o.name)) fixedNames.add(o.name);
  }
  const renamable = (n: string): boolean => !keep.has(n) && !fixedNames.has(n) && !PREDECLARED.has(n);
  const renameSet = new Set([...declared].filter(renamable));
  const memberSet = new Set([...declaredMembers].filter((n) => renamable(n) && !readableAfterDot(n)));
  // Every name that stays as it is, in any position, so no new name collides with one.
  const taken = new Set<string>();
  const uses = new Map<string, number>();
  const memberUses = new Map<string, number>();
  const count = (counts: Map<string, number>, n: string): void => void counts.set(n, (counts.get(n) ?? 0) + 1);
  for (const occ of all.values()) {
    for (const o of occ) {
      if (o.fixed) taken.add(o.name);
      else if (o.kind === 'plain') renameSet.has(o.name) ? count(uses, o.name) : taken.add(o.name);
      else memberSet.has(o.name) ? count(memberUses, o.name) : taken.add(o.name);
    }
  }
  for (const n of taken) {
    renameSet.delete(n);
    memberSet.delete(n);
  }
  // Most used first, so they get the one-letter names.
  const byUse = (counts: Map<string, number>, set: Set<string>): string[] =>
    [...set].sort((a, b) => (counts.get(b) ?? 0) - (counts.get(a) ?? 0) || a.localeCompare(b));
  const assign = (counts: Map<string, number>, set: Set<string>): Map<string, string> => {
    const sources = byUse(counts, set);
    const short = shortNames(taken, sources.length);
    return new Map(sources.map((n, i) => [n, short[i] as string]));
  };
  const names = assign(uses, renameSet);
  // Members have their own namespace (a struct's scope): their short names may repeat the identifiers'.
  const members = assign(memberUses, memberSet);

  const out = new Map<string, string>();
  for (const [file, text] of files) {
    let result = '';
    let at = 0;
    for (const o of all.get(file) ?? []) {
      const to = o.fixed ? undefined : o.kind === 'plain' ? names.get(o.name) : members.get(o.name);
      if (to === undefined) continue;
      result += text.slice(at, o.index) + to;
      at = o.index + o.name.length;
    }
    out.set(file, result + text.slice(at));
  }
  return { files: out, names, members };
}
