// The sample and eval commands on a checkpoint written by train (reference backend, tiny model).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { train } from '../src/train/trainer.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { capture } from './helpers/capture.js';

let dir: string, ckpt: string, valLoss: number;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-sample-'));
  fs.writeFileSync(path.join(dir, 'text.txt'), 'Call me Ishmael. Some years ago, never mind how long precisely. '.repeat(40));
  const r = await train({
    preset: 'char-tiny',
    nEmbd: 16,
    nHead: 2,
    nLayer: 1,
    seq: 16,
    batch: 4,
    steps: 20,
    evalWindows: 8,
    evalEvery: 0,
    data: path.join(dir, 'text.txt'),
    backend: new ReferenceBackend(),
    out: path.join(dir, 'run'),
    quiet: true,
    sampleTokens: 0,
    cacheDir: null,
  });
  ckpt = r.checkpoint;
  valLoss = r.valLoss;
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('crate-ts sample / eval', () => {
  it('sample continues the prompt with the requested number of byte tokens, deterministically per seed', async () => {
    const a = await capture(['sample', '--checkpoint', path.join(dir, 'run'), '--prompt', 'Call me', '--tokens', '25', '--seed', '3']);
    expect(a.code).toBe(0);
    expect(a.out.startsWith('Call me')).toBe(true);
    expect(Buffer.byteLength(a.out.slice('Call me'.length, -1), 'utf8')).toBeLessThanOrEqual(25 * 3); // replacement chars may widen bytes
    const b = await capture(['sample', '--checkpoint', ckpt, '--prompt', 'Call me', '--tokens', '25', '--seed', '3']);
    expect(b.out).toBe(a.out);
    const greedy = await capture(['sample', '--checkpoint', ckpt, '--tokens', '10', '--temperature', '0']);
    expect(greedy.code).toBe(0);
  });

  it('eval prints loss and perplexity; on the training windows it reproduces the final validation loss', async () => {
    const r = await capture(['eval', '--checkpoint', ckpt, '--backend', 'reference', '--windows', '8']);
    expect(r.code).toBe(0);
    const m = /loss (\d+\.\d+) nats\/token, perplexity (\d+\.\d+)/.exec(r.out);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeCloseTo(valLoss, 4);
    expect(Number(m![2])).toBeCloseTo(Math.exp(valLoss), 2);
    expect(r.out).toMatch(/unigram entropy of these tokens \d\.\d+ nats/);
  });

  it('clear errors: missing checkpoint, corrupt checkpoint, no --checkpoint', async () => {
    const missing = await capture(['sample', '--checkpoint', path.join(dir, 'nope.safetensors')]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/checkpoint '.*nope\.safetensors' does not exist/);
    const cut = path.join(dir, 'cut.safetensors');
    fs.writeFileSync(cut, fs.readFileSync(ckpt).subarray(0, 1000));
    const corrupt = await capture(['eval', '--checkpoint', cut, '--backend', 'reference']);
    expect(corrupt.code).toBe(1);
    expect(corrupt.err).toMatch(/cannot read checkpoint: .*cut\.safetensors/);
    const none = await capture(['sample']);
    expect(none.err).toMatch(/--checkpoint is required/);
  });
});
