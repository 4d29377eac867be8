// crate-ts fixture --preset NAME --seed N --batch B --seq T --out FILE [--arch crate|crate-complete|gpt2]
import { parse, intOpt, strOpt } from './args.js';
import { makeConfig, type Arch } from '../model/config.js';
import { ReferenceBackend } from '../backend/reference.js';
import { writeFixture } from '../audit/fixture.js';
import { Rng } from '../util/rng.js';

const HELP = `usage: crate-ts fixture --preset NAME --seed N --batch B --seq T --out FILE [--arch crate|crate-complete|gpt2]

Writes a fixture computed by the float64 reference: parameters (seeded init), a random batch,
logits, loss and every parameter gradient, in the safetensors format of DESIGN.md "Fixtures".`;

export async function run(argv: string[]): Promise<number> {
  const v = parse(argv, {
    preset: { type: 'string' }, arch: { type: 'string' }, seed: { type: 'string' }, batch: { type: 'string' }, seq: { type: 'string' },
    out: { type: 'string' }, help: { type: 'boolean', short: 'h' },
  });
  if (v.help) { console.log(HELP); return 0; }
  const out = strOpt(v, 'out');
  if (!out) { console.error(`crate-ts fixture: --out FILE is required\n\n${HELP}`); return 2; }
  const config = makeConfig(strOpt(v, 'preset') ?? 'golden', v.arch ? { arch: strOpt(v, 'arch') as Arch } : {});
  const seed = intOpt(v, 'seed', 1), B = intOpt(v, 'batch', 2, 1), T = intOpt(v, 'seq', Math.min(8, config.blockSize), 1);
  if (T > config.blockSize) throw new Error(`--seq ${T} exceeds the preset's block size ${config.blockSize}`);
  const rng = new Rng(seed ^ 0x5eed);
  writeFixture(out, new ReferenceBackend(), config, seed, B, T, (n, V) => Int32Array.from({ length: n }, () => rng.int(V)));
  console.log(`wrote ${out}: ${config.arch}, L=${config.nLayer}, d=${config.nEmbd}, V=${config.vocabSize}, batch ${B}x${T}, seed ${seed}`);
  return 0;
}
