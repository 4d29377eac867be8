// The property checks of spec section 4 (src/verify/properties.ts), the fault injection that must
// make them fail, `crate-ts verify` (table, JSON, exit codes) and the layer-wise diagnostics.
import { describe, it, expect, vi, afterEach, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runChecks, CHECK_IDS, p8Regime, type ChecksSummary } from '../src/verify/properties.js';
import { checksJson, formatChecksTable } from '../src/verify/report.js';
import { run as verifyCli } from '../src/cli/verify.js';
import { layerDiagnostics, formatDiagnostics, diagnosticsSvg } from '../src/verify/diagnostics.js';
import { randomTinyModel, randomTokens } from '../src/verify/models.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import { Rng } from '../src/util/rng.js';

let full: ChecksSummary;
beforeAll(() => {
  full = runChecks({ seed: 1 });
});

/** Capture console.log / console.error during an async call. */
async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [],
    err: string[] = [];
  const l = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
    out.push(a.join(' '));
  });
  const e = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => {
    err.push(a.join(' '));
  });
  try {
    const code = await fn();
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    l.mockRestore();
    e.mockRestore();
  }
}

afterEach(() => vi.restoreAllMocks());

describe('property checks P1–P23', () => {
  it('all 23 properties hold for a fixed seed, each on at least one instance', () => {
    expect(full.checks.map((c) => c.id)).toEqual(Array.from({ length: 23 }, (_, i) => `P${i + 1}`));
    const failed = full.checks.filter((c) => !c.pass).map((c) => `${c.id}: worst ${c.worst} tol ${c.tolerance} ${c.note ?? ''}`);
    expect(failed).toEqual([]);
    expect(full.pass).toBe(true);
    for (const c of full.checks) {
      expect(c.instances).toBeGreaterThan(0);
      expect(Number.isFinite(c.worst)).toBe(true);
      expect(c.statement.length).toBeGreaterThan(0);
      expect(c.measure.length).toBeGreaterThan(0);
    }
  });

  it('is deterministic in the seed, and --only reproduces the same rows as a full run', () => {
    const again = runChecks({ seed: 1, only: ['P5', 'P9', 'P21'] });
    for (const c of again.checks) {
      const f = full.checks.find((x) => x.id === c.id)!;
      expect(c.worst).toBe(f.worst);
      expect(c.instances).toBe(f.instances);
    }
    expect(runChecks({ seed: 2, only: ['p1', ' P2 '] }).checks.map((c) => c.id)).toEqual(['P1', 'P2']);
    expect(() => runChecks({ only: ['P24'] })).toThrow(/unknown property id\(s\) P24/);
  });

  it("a sign flipped in the checks' own ISTA step makes the ISTA checks fail, and only those", () => {
    const bad = runChecks({ seed: 1, inject: { istaSignFlip: true } });
    const failed = bad.checks.filter((c) => !c.pass).map((c) => c.id);
    expect(failed).toEqual(expect.arrayContaining(['P10', 'P13']));
    expect(failed).toEqual(['P10', 'P12', 'P13', 'P17']);
    expect(bad.pass).toBe(false);
    const p10 = bad.checks.find((c) => c.id === 'P10')!;
    expect(p10.worst).toBeGreaterThan(1e-3);
  });

  it('P8 is a finding: descent for small tokens, ascent reported (not asserted) at unit scale', () => {
    const p8 = full.checks.find((c) => c.id === 'P8')!;
    expect(p8.pass).toBe(true);
    expect(p8.worst).toBeGreaterThan(0); // min cosine in the small-signal regime
    expect(p8.note).toMatch(/small-signal .* R\^c decreased 200\/200/);
    expect(p8.note).toMatch(/unit scale .*not asserted: cos -?[\d.]+\/-?[\d.]+\/-?[\d.]+, R\^c decreased \d+\/200/);
    const small = p8Regime(new Rng(3), 0.05, 0.2, 20);
    expect(small.decreased).toBe(20);
    expect(Math.min(...small.cos)).toBeGreaterThan(0);
  });
});

describe('report formats', () => {
  it('JSON: {pass, checks: [{id, pass, worst, tolerance, instances, statement, note?}]}', () => {
    const j = checksJson(full);
    expect(j.pass).toBe(true);
    expect(j.checks).toHaveLength(23);
    for (const c of j.checks) {
      expect(Object.keys(c)).toEqual(expect.arrayContaining(['id', 'pass', 'worst', 'tolerance', 'instances', 'statement']));
      expect(typeof c.pass).toBe('boolean');
      expect(typeof c.worst).toBe('number');
      if ('note' in c) expect(typeof c.note).toBe('string');
    }
    // NaN (a check that threw) becomes null, not invalid JSON
    const broken: ChecksSummary = { pass: false, seed: 0, checks: [{ ...full.checks[0], worst: NaN, tolerance: NaN, pass: false }] };
    expect(JSON.parse(JSON.stringify(checksJson(broken))).checks[0].worst).toBeNull();
  });

  it('table: one row per property and a summary line', () => {
    const t = formatChecksTable(full);
    for (const id of CHECK_IDS) expect(t).toMatch(new RegExp(`^${id} `, 'm'));
    expect(t).toMatch(/PASS: 23 of 23 properties hold \(seed 1/);
  });
});

describe('crate-ts verify', () => {
  it('--json --only prints one JSON object and exits 0', async () => {
    const r = await capture(() => verifyCli(['--json', '--only', 'P1,P22', '--seed', '4']));
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.pass).toBe(true);
    expect(j.seed).toBe(4);
    expect(j.checks.map((c: { id: string }) => c.id)).toEqual(['P1', 'P22']);
  });

  it('prints the table, the P8 finding in the notes, and rejects bad options', async () => {
    const r = await capture(() => verifyCli(['--only', 'P8']));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^P8 .*PASS$/m);
    expect(r.out).toMatch(/P8: .*unit scale/);
    await expect(verifyCli(['--only', 'P99'])).rejects.toThrow(/unknown property/);
    await expect(verifyCli(['--seed', 'x'])).rejects.toThrow(/--seed must be an integer/);
    await expect(verifyCli(['--bogus'])).rejects.toThrow(/bogus/);
    const misuse = await capture(() => verifyCli(['--svg', 'x.svg']));
    expect(misuse.code).toBe(2);
    expect(misuse.err).toMatch(/--svg only applies with --checkpoint/);
    expect((await capture(() => verifyCli(['--help']))).out).toMatch(/usage: crate-ts verify/);
  });
});

describe('layer-wise diagnostics (E21)', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-verify-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('measures compression and sparsity per layer', () => {
    const rng = new Rng(5);
    const cfg = makeConfig(undefined, { vocabSize: 20, blockSize: 8, nLayer: 3, nHead: 2, nEmbd: 8 });
    const model = randomTinyModel(rng, cfg) as LanguageModel<unknown>;
    const batches = [0, 1].map(() => ({ idx: randomTokens(rng, 3 * 8, 20), B: 3, T: 8 }));
    const r = layerDiagnostics(model, batches);
    expect(r.layers).toHaveLength(3);
    expect(r.sequences).toBe(6);
    expect(r.tokens).toBe(48);
    for (const d of r.layers) {
      expect(d.width).toBe(32);
      expect(d.zeroFraction).toBeGreaterThanOrEqual(0);
      expect(d.zeroFraction).toBeLessThanOrEqual(1);
      expect(d.meanL0).toBeCloseTo(d.width * (1 - d.zeroFraction), 10);
      expect(d.compressionMean).toBeGreaterThan(0);
      expect(d.deadCodes).toBeGreaterThanOrEqual(0);
    }
    expect(formatDiagnostics(r).split('\n')).toHaveLength(5);
    const svg = diagnosticsSvg(r);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toMatch(/<\/svg>$/);
    expect(svg.match(/<circle/g)).toHaveLength(6);
    model.free();
  });

  it('crate-ts verify --checkpoint --data --svg runs on a saved checkpoint', async () => {
    const cfg = makeConfig(undefined, { vocabSize: 256, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 8 });
    const model = new LanguageModel(new ReferenceBackend(), cfg, { seed: 3 }) as LanguageModel<unknown>;
    const ck = path.join(dir, 'ck.safetensors'),
      txt = path.join(dir, 'text.txt'),
      svg = path.join(dir, 'chart.svg');
    saveCheckpoint(ck, { model, tokenizer: 'byte' });
    fs.writeFileSync(txt, 'Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse. '.repeat(20));
    const r = await capture(() => verifyCli(['--checkpoint', ck, '--data', txt, '--seq', '8', '--windows', '6', '--batch', '3', '--svg', svg]));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/layer\s+R\^c mean/);
    expect(r.out).toMatch(/6 windows × 8 tokens/);
    expect(fs.readFileSync(svg, 'utf8')).toMatch(/^<svg/);
    const j = await capture(() => verifyCli(['--checkpoint', ck, '--data', txt, '--seq', '8', '--windows', '2', '--json']));
    const parsed = JSON.parse(j.out);
    expect(parsed.layers).toHaveLength(2);
    expect(parsed.sequences).toBe(2);
    model.free();
  });
});
