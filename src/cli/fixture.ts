// crate-ts fixture --out FILE [--preset NAME] [--seed N] [--batch B] [--seq T] [--arch crate|crate-complete|gpt2]
import { parse, intOpt, strOpt } from './args.js';
import { makeConfig, PRESETS, type Arch } from '../model/config.js';
import { archList, isArch } from '../model/archs.js';
import { ReferenceBackend } from '../backend/reference.js';
import { writeFixture } from '../audit/fixture.js';
import { Rng } from '../util/rng.js';
import { UsageError } from '../errors.js';

const HELP = `usage: crate-ts fixture --out FILE [--preset NAME] [--seed N] [--batch B] [--seq T] [--arch ARCH]

Writes a fixture computed by the float64 reference (always: a fixture is the ground truth other
implementations are held to): parameters (seeded init), a random batch, logits, loss and every
parameter gradient, in the safetensors format of docs/FIXTURES.md (shipped with the package).

  --out FILE      where to write it (required)
  --preset NAME   model size: ${Object.keys(PRESETS).join(', ')} (default golden)
  --arch ARCH     crate | crate-complete | gpt2 (default crate)
  --seed N        seed of the parameters and the batch (default 1)
  --batch B       sequences (default 2)
  --seq T         tokens per sequence (default min(8, block size))`;

export async function run(argv: string[]): Promise<number> {
  const v = parse(argv, {
    preset: { type: 'string' },
    arch: { type: 'string' },
    seed: { type: 'string' },
    batch: { type: 'string' },
    seq: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const out = strOpt(v, 'out');
  if (!out) throw new UsageError('--out FILE is required (crate-ts help fixture)');
  const arch = strOpt(v, 'arch');
  if (arch !== undefined && !isArch(arch)) throw new UsageError(`--arch must be ${archList()}, got '${arch}'`);
  const preset = strOpt(v, 'preset') ?? 'golden';
  if (!Object.prototype.hasOwnProperty.call(PRESETS, preset))
    throw new UsageError(`--preset '${preset}' is unknown; known presets: ${Object.keys(PRESETS).join(', ')}`);
  const config = makeConfig(preset, arch ? { arch: arch as Arch } : {});
  const seed = intOpt(v, 'seed', 1),
    B = intOpt(v, 'batch', 2, 1),
    T = intOpt(v, 'seq', Math.min(8, config.blockSize), 1);
  if (T > config.blockSize) throw new UsageError(`--seq ${T} exceeds the preset's block size ${config.blockSize}`);
  const rng = new Rng(seed ^ 0x5eed);
  writeFixture(out, new ReferenceBackend(), config, seed, B, T, (n, V) => Int32Array.from({ length: n }, () => rng.int(V)));
  console.log(`wrote ${out}: ${config.arch}, L=${config.nLayer}, d=${config.nEmbd}, V=${config.vocabSize}, batch ${B}x${T}, seed ${seed}`);
  return 0;
}
