// The contract between LanguageModel and a block (CRATE, complete-ISTA CRATE, GPT-2, or a new one):
// each block declares once its parameters (PyTorch name, shape, initialisation) and its hook points
// (name, shape in B and T, which tensor), and owns their use: the activations it keeps for backward,
// the forward and backward, and an incremental decode step that reuses the same code path for one
// new position per sequence. An Architecture names a block class; src/model/archs.ts lists them,
// and the parameter table, the parameter count and the hook names are folds over the blocks.
import type { BlockConfig, Ctx } from './context.js';

/** How a parameter is initialised (spec 3.2). */
export type Init = { kind: 'normal'; std: number } | { kind: 'uniform'; bound: number } | { kind: 'const'; value: number };

/** One parameter of a block: its name after `transformer.h.{layer}.` (PyTorch's state_dict), shape and initialisation. */
export interface ParamDecl {
  name: string;
  shape: number[];
  init: Init;
}

/**
 * A size a hook shape is written in: B (sequences), T (positions), d (n_embd), h (overcomplete·d),
 * NH (heads), p (d / NH), V (vocabulary). The README's hook table prints these symbols.
 */
export type Dim = 'B' | 'T' | 'd' | 'h' | 'NH' | 'p' | 'V';

/**
 * Where a hook's tensor lies after a forward (LanguageModel.activations()): an activation the block
 * keeps (a key of Block.sizes) or 'out', the block's output. `index`: the buffer holds several
 * tensors of the hook's shape one after another (the ISTA iterates), take that one. `column`/
 * `rowWidth`: each token's row has rowWidth elements and the tensor is the columns from `column`
 * (GPT-2's q, k, v inside c_attn's output).
 */
export interface TensorRef {
  act: string;
  index?: number;
  column?: number;
  rowWidth?: number;
}

/** One hook point of a block: its name after `blocks.{layer}.`, its shape, what it is. */
export interface HookDecl {
  name: string;
  shape: readonly Dim[];
  /** What the tensor is (one line: the README's hook table and error messages). */
  doc: string;
  /** The stored tensor, or absent when the forward does not keep it (formed on the host, a scratch buffer, or the same buffer as another hook). */
  tensor?: TensorRef;
}

/** Backward scratch shared by the blocks: three (N,C) buffers and two (N, max(3C, H)). */
export interface Scratch<Buf> {
  d1: Buf;
  d2: Buf;
  d3: Buf;
  w1: Buf;
  w2: Buf;
}

/**
 * The position of a decode step's new token: one for every sequence, or one per sequence (a
 * decoder whose rows are at different positions: a server batching requests of different lengths).
 */
export type DecodePos = number | Int32Array;

/** Per-step decode scratch (rows = sequences in the batch). */
export interface DecodeScratch<Buf> {
  u: Buf;
  mean: Buf;
  rstd: Buf; // LayerNorm output and statistics (n,C), (n), (n)
  proj: Buf; // c_attn output (n, C or 3C)
  q: Buf; // GPT-2: contiguous queries (n,C)
  y: Buf;
  tmp: Buf; // attention output and branch (n,C)
  wide1: Buf;
  wide2: Buf; // (n,H) or (steps,n,H): ISTA codes / MLP hidden
}

/** The residual stream of a decode step: x (n,C) enters and leaves the block; xh (n,C) is the middle. */
export interface DecodeBufs<Buf> {
  x: Buf;
  xh: Buf;
}

export interface Block<Acts = unknown> {
  readonly layer: number;
  /** The block's parameters in state_dict order (names after `transformer.h.{layer}.`). */
  readonly params: readonly ParamDecl[];
  /** The block's hook points in execution order (names after `blocks.{layer}.`). */
  readonly hooks: readonly HookDecl[];
  /** The hook (a name of `hooks`) that `blocks.{l}.hook_neurons` aliases: the architecture's neurons. */
  readonly neurons: string;
  /**
   * Elements of each activation this block keeps for backward, for N rows; among them `x` (N·d),
   * the block input, where the embedding or the previous block writes.
   */
  sizes(N: number, attSaved: number): Record<string, number>;
  /** out ← block(acts.x); fills acts and calls the hook points in execution order. tmp: (N,C) scratch. */
  forward<Buf>(ctx: Ctx<Buf>, acts: Acts, out: Buf, tmp: Buf): void;
  /** s.d1 holds d(out) on entry and d(acts.x) on exit; parameter gradients accumulate. */
  backward<Buf>(ctx: Ctx<Buf>, acts: Acts, out: Buf, s: Scratch<Buf>): void;
  /** Elements of this layer's decode cache for `batch` sequences of up to maxT positions. */
  cacheSize(batch: number, maxT: number): number;
  /** One new position per sequence (t, or t[b] for row b): io.x ← block(io.x), appending to the cache. */
  decode<Buf>(ctx: Ctx<Buf>, cache: Buf, io: DecodeBufs<Buf>, t: DecodePos, maxT: number, d: DecodeScratch<Buf>): void;
  /**
   * The output directions of the neurons, (width × d) row-major: row i is what neuron i adds to the
   * residual stream per unit (the viewer's logit effects). `param` returns a parameter by its name
   * after `transformer.h.{layer}.`.
   */
  neuronDirections(param: (name: string) => Float64Array): Float64Array;
}

/** An architecture: a block class and the few model-level facts that go with it. */
export interface Architecture<Name extends string = string> {
  /** The name in configs, checkpoints and `--arch`. */
  readonly name: Name;
  /** One line for help texts. */
  readonly summary: string;
  /** config.json's model_type. */
  readonly modelType: string;
  /** nanoGPT's `bias`: the LayerNorms (the final ln_f included) and c_proj have biases. */
  readonly bias: boolean;
  /** The block of layer `layer` of a model with this configuration. */
  block(layer: number, cfg: BlockConfig): Block;
  /**
   * Whether a state_dict tensor of a block (`name` after `transformer.h.{l}.`) shows that the file
   * holds this architecture: 'by name', 'by shape' (the name together with its shape), or false.
   * The tensor is the evidence named when a checkpoint of another architecture is loaded.
   */
  recognizes(name: string, shape: readonly number[]): false | 'by name' | 'by shape';
}

/** Hook points every block of this project has, declared once for them all. */
export const SHARED_HOOKS = {
  residPre: {
    name: 'hook_resid_pre',
    shape: ['B', 'T', 'd'],
    doc: 'residual stream entering block l (`hook_embed + hook_pos_embed` for l = 0)',
    tensor: { act: 'x' },
  },
  residMid: { name: 'hook_resid_mid', shape: ['B', 'T', 'd'], doc: 'residual stream after the attention branch', tensor: { act: 'xh' } },
  ln2: { name: 'ln2.hook_normalized', shape: ['B', 'T', 'd'], doc: 'LN₂ output (the ISTA input u for CRATE)', tensor: { act: 'ln2' } },
  residPost: {
    name: 'hook_resid_post',
    shape: ['B', 'T', 'd'],
    doc: 'residual stream leaving block l (= `hook_resid_pre` of block l + 1)',
    tensor: { act: 'out' },
  },
} as const satisfies Record<string, HookDecl>;
