/**
 * The build-time WGSL minifier (build/minify-wgsl.ts): what it renames, what it must leave alone,
 * and, on the real shaders, that the shipped files are the compacted sources under a bijection of
 * names. That the minified modules compile and compute the same is every GPU suite's job: they
 * all run the shipped (minified) code.
 */
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { describe, expect, it } from 'vitest';
import { minifyWgsl } from '../build/minify-wgsl.js';
import { shippedWgsl } from '../build/wgsl-shaders.js';

const one = (text: string, keep: string[] = []): string => minifyWgsl(new Map([['a.wgsl', text]]), new Set(keep)).files.get('a.wgsl') ?? '';

describe('minifyWgsl', () => {
  it('renames declared names, keeps entry points, overrides and everything predeclared', () => {
    const src = [
      'override BLOCK:u32=64u;',
      'struct LongParams{rows:u32,columnCount:u32,}',
      '@group(0)@binding(0)var<uniform> params:LongParams;',
      '@group(0)@binding(1)var<storage,read_write> output:array<f32>;',
      'fn scaled_value(value:f32)-> f32{return max(value,0.0)*f32(BLOCK);}',
      '@compute @workgroup_size(BLOCK)fn main(@builtin(global_invocation_id) gid:vec3u){',
      'let index=gid.x+params.columnCount;',
      'output[index]=scaled_value(1e-5f)+f32(0x1Fu);',
      '}',
    ].join('\n');
    const out = one(src, ['main', 'BLOCK']);
    for (const gone of ['LongParams', 'columnCount', 'params', 'output', 'scaled_value', 'value', 'index']) {
      expect(out, gone).not.toMatch(new RegExp(`\\b${gone}\\b`));
    }
    for (const kept of ['fn main(', 'BLOCK', '@builtin(global_invocation_id)', 'max(', 'f32(', '1e-5f', '0x1Fu', '.x+']) {
      expect(out, kept).toContain(kept);
    }
    expect(out.split('\n')).toHaveLength(src.split('\n').length);
    // Still a module with the same interface.
    const r = new WgslReflect(out);
    expect(r.entry.compute.map((f) => f.name)).toEqual(['main']);
    expect(r.overrides.map((o) => o.name)).toEqual(['BLOCK']);
    expect(r.entry.compute[0]?.resources.map((b) => [b.group, b.binding])).toEqual([
      [0, 0],
      [0, 1],
    ]);
  });

  it('members are renamed only as members: swizzles and built-in result members stay', () => {
    const src = [
      'struct Pair{x:f32,longName:f32,}',
      'fn f(p:Pair,v:vec4f)-> f32{',
      'let m=modf(v.x);',
      'return p.x+p.longName+v.xy.y+v.w+m.fract+m.whole;',
      '}',
    ].join('\n');
    const { files, members } = minifyWgsl(new Map([['a.wgsl', src]]), new Set());
    const out = files.get('a.wgsl') ?? '';
    expect(members.has('x')).toBe(false);
    const longName = members.get('longName');
    expect(longName).toBeDefined();
    expect(out).toContain(`.${longName}+`);
    for (const kept of ['v.xy.y', '.w+', '.fract+', '.whole;', 'modf(']) expect(out, kept).toContain(kept.replace(/^v/, ''));
    // A member short name never takes the name of a member left alone in any struct.
    expect(longName).not.toBe('x');
  });

  it('a declared name that shadows a built-in used elsewhere, or an attribute argument, keeps its name', () => {
    // `max` is a parameter here and the built-in max() in main: renaming the one renames the other.
    const src = [
      'fn clampish(max:f32,x:f32)-> f32{return min(x,max);}',
      '@compute @workgroup_size(1)fn main(@builtin(local_invocation_index) local_invocation_index:u32){',
      'let y=max(clampish(f32(local_invocation_index),2.0),0.0);',
      '}',
    ].join('\n');
    const out = one(src, ['main']);
    expect(out).toContain('min(');
    expect(out).toMatch(/\bmax\b/);
    expect(out).toContain('=max(');
    // A type name the shaders shadow stays too (types are no calls: the PREDECLARED list).
    expect(one('fn g(f32:u32)-> u32{return f32;}\nfn h(v:f32)-> f32{return v;}')).toMatch(/\(f32:u32\)/);
    expect(out).toContain('@builtin(local_invocation_index) local_invocation_index:u32');
    expect(out).toContain('(local_invocation_index)');
    expect(out).not.toMatch(/\bclampish\b/);
  });

  it('one map for every file: a shared name gets one short name, and no new name collides with a kept one', () => {
    const files = new Map([
      ['a.wgsl', 'override a:u32;\nfn helper_one(value:u32)-> u32{return value+a;}'],
      ['b.wgsl', 'fn helper_two(value:u32)-> u32{return helper_one(value);}'],
    ]);
    const { files: out, names } = minifyWgsl(files, new Set(['a']));
    const short = names.get('helper_one');
    expect(out.get('b.wgsl')).toContain(`${short}(${names.get('value')})`);
    expect([...names.values()]).not.toContain('a');
    expect(new Set(names.values()).size).toBe(names.size);
  });

  it('the shipped shaders are the compacted sources under a bijection of names (decoding gives each file back)', () => {
    const shipped = shippedWgsl();
    const decodeName = new Map([...shipped.names].map(([from, to]) => [to, from]));
    const decodeMember = new Map([...shipped.members].map(([from, to]) => [to, from]));
    expect(decodeName.size).toBe(shipped.names.size);
    expect(decodeMember.size).toBe(shipped.members.size);
    let before = 0;
    let after = 0;
    for (const [file, text] of shipped.files) {
      const source = shipped.compacted.get(file) ?? '';
      before += source.length;
      after += text.length;
      expect(text.split('\n').length, `${file}: lines kept`).toBe(source.split('\n').length);
      // Token by token: punctuation and literals equal, every identifier decodes to the source's.
      const tokens = (t: string): string[] => t.match(/\b[A-Za-z_]\w*|\S/g) ?? [];
      const a = tokens(source);
      const b = tokens(text);
      expect(b.length, file).toBe(a.length);
      const wrong: string[] = [];
      b.forEach((tok, i) => {
        const original = a[i] ?? '';
        if (tok === original) return;
        const afterDot = b[i - 1] === '.' || (b[i + 1] === ':' && decodeMember.get(tok) === original);
        const decoded = afterDot ? decodeMember.get(tok) : decodeName.get(tok);
        if (decoded !== original) wrong.push(`${original} → ${tok}`);
      });
      expect(wrong, file).toEqual([]);
    }
    // The point of it (measured: 68.7 KB of compacted WGSL in the root app before, 46.1 KB after).
    expect(after).toBeLessThan(0.75 * before);
  });
});
