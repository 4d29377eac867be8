// From a trained run to the neurons that fire most on the last token of a prompt, with the public
// API of crate-ts only (what `import ... from 'crate-ts'` gives an installed package):
//
//   npx crate-ts train --steps 200 --out r          # any run directory (or its model.safetensors)
//   node examples/top-neurons.mjs r "The whale"     # prints one line per layer: its top 5 neurons
//
// Steps: loadCheckpoint -> modelFromCheckpoint (on a backend chosen by selectBackend) ->
// loadTokenizer (the checkpoint's own) -> runWithCache (only the neuron hooks) -> top neurons of the
// last token. The neurons are blocks.{l}.hook_neurons: CRATE's ISTA code a2, GPT-2's MLP hidden.
import { loadCheckpoint, modelFromCheckpoint, loadTokenizer, selectBackend, toDense } from 'crate-ts';

const [run, prompt = 'The whale', k = '5'] = process.argv.slice(2);
if (!run) {
  console.error('usage: node examples/top-neurons.mjs RUN_DIR [PROMPT] [K]');
  process.exit(2);
}

const ck = loadCheckpoint(run); // a run directory or its model.safetensors; the file is validated
const { backend, reason } = await selectBackend('auto'); // CRATE_TS_BACKEND=reference|cpu|cuda overrides auto
const model = modelFromCheckpoint(ck, backend);
const tok = await loadTokenizer(ck.tokenizer, ck.tokenizerVocab);
try {
  const ids = tok.encode(prompt).slice(-ck.config.blockSize); // at most one context of tokens
  const T = ids.length;
  const names = Array.from({ length: ck.config.nLayer }, (_, l) => `blocks.${l}.hook_neurons`);
  const { cache } = model.runWithCache(ids, 1, T, { names, returnLogits: false });
  console.log(`${run}: ${ck.config.arch}, ${ck.config.nLayer} layers; backend ${reason}`);
  console.log(`prompt ${JSON.stringify(prompt)} (${T} tokens); last token ${JSON.stringify(tok.decode([ids[T - 1]]))}`);
  for (const [l, name] of names.entries()) {
    const a = cache.get(name); // ndarray (1, T, width), float64
    const width = a.shape[2];
    const last = toDense(a).subarray((T - 1) * width, T * width); // the last token's neurons
    const top = [...last.keys()].sort((i, j) => last[j] - last[i] || i - j).slice(0, Number(k));
    console.log(`layer ${l}: ` + top.map((i) => `neuron ${i} = ${last[i].toFixed(4)}`).join(', '));
  }
} finally {
  model.free();
}
