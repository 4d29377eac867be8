#!/usr/bin/env bash
# Regenerates the README's default-run table (and the sample under it) from fresh runs, so the
# numbers cannot drift from what `npx crate-ts train` does:
#
#   bash scripts/readme-default-run.sh                  # the four runs, the table on stdout
#   bash scripts/readme-default-run.sh --write-readme   # ... and replaced in README.md between
#                                                       # <!-- default-run:begin --> and <!-- default-run:end -->
#   bash scripts/readme-default-run.sh --steps 20       # any extra train options (a quick check of the script)
#
# The rows are the defaults on the cpu backend (CRATE and the GPT-2 baseline) and on the reference
# backend (both architectures). Wall time is the whole command (node start, data, training,
# evaluation, sample), measured here; the other columns come from the summary record of each run's
# train.jsonl. Run it on a quiet machine: the wall times and tokens/s are the machine's.
set -euo pipefail
cd "$(dirname "$0")/.."

write=0
extra=()
for a in "$@"; do
  if [[ "$a" == "--write-readme" ]]; then write=1; else extra+=("$a"); fi
done
if [[ ! -f dist/cli/main.js ]]; then echo "dist/ is missing: run npx tsc -p tsconfig.json first" >&2; exit 2; fi

out=$(mktemp -d "${TMPDIR:-/tmp}/crate-default-run.XXXXXX")
trap 'rm -rf "$out"' EXIT
runs=(
  "crate-cpu|npx crate-ts train|"
  "gpt2-cpu|npx crate-ts train --arch gpt2|--arch gpt2"
  "crate-ref|npx crate-ts train --backend reference|--backend reference"
  "gpt2-ref|npx crate-ts train --backend reference --arch gpt2|--backend reference --arch gpt2"
)
for r in "${runs[@]}"; do
  IFS='|' read -r name label args <<<"$r"
  echo "running: $label ${extra[*]:-}" >&2
  t0=$(date +%s%N)
  # shellcheck disable=SC2086
  node bin/crate-ts.js train $args "${extra[@]}" --out "$out/$name" > "$out/$name.stdout"
  t1=$(date +%s%N)
  printf '%s\t%s\n' "$label" "$(( (t1 - t0) / 1000000 ))" > "$out/$name.meta"
done

node --input-type=module - "$out" "$write" "${extra[*]:-}" <<'EOF'
import * as fs from 'node:fs';
import * as path from 'node:path';
const [dir, write, extra] = process.argv.slice(2);
const names = ['crate-cpu', 'gpt2-cpu', 'crate-ref', 'gpt2-ref'];
const int = (x) => Math.round(x).toLocaleString('en-US');
const wall = (s) => (s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(1)}s`);
const rows = [], machine = [];
let sample = '';
for (const name of names) {
  const [label, ms] = fs.readFileSync(path.join(dir, `${name}.meta`), 'utf8').trim().split('\t');
  const log = fs.readFileSync(path.join(dir, name, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const cfg = log.find((r) => r.type === 'config'), sum = log.findLast((r) => r.type === 'summary');
  if (!cfg || !sum) throw new Error(`${name}: no config or summary record in train.jsonl (did the run finish?)`);
  const h = cfg.hyper, m = cfg.model;
  const what = `${m.arch === 'gpt2' ? 'GPT-2' : 'CRATE'}, ${m.nLayer} layer${m.nLayer > 1 ? 's' : ''}, d ${m.nEmbd}, T ${h.seq}, ${int(h.steps)} steps × ${int(h.batch * h.seq * h.gradAccum)} tokens`;
  rows.push(`| \`${label}\` (${what}) | ${sum.backend} | ${wall(Number(ms) / 1000)} | ${int(sum.tokens_per_sec)} | ${sum.train_loss.toFixed(3)} | ${name === 'crate-cpu' ? `**${sum.val_loss.toFixed(3)}**` : sum.val_loss.toFixed(3)} | ${sum.unigram_entropy.toFixed(3)} nats |`);
  if (!machine.length) machine.push(cfg.machine.cpu, cfg.machine.cores, cfg.version, cfg.time);
  if (name === 'crate-cpu') {
    const out = fs.readFileSync(path.join(dir, `${name}.stdout`), 'utf8');
    const i = out.indexOf('sample (temperature 0.8, top-k 40):\n');
    if (i >= 0) sample = out.slice(i).split('\n').slice(1).join('\n').trim();
  }
}
const [cpu, cores, version, time] = machine;
const table = [
  `Measured by \`bash scripts/readme-default-run.sh${extra ? ' ' + extra : ''}\` (crate-ts ${version}, ${time.slice(0, 16).replace('T', ' ')} UTC) on ${cpu}, ${cores} cores:`,
  '',
  '| run | backend | wall | tokens/s | train loss | val loss | unigram entropy of val |',
  '|---|---|---|---|---|---|---|',
  ...rows,
  '',
  'Sample from the default CRATE run (temperature 0.8, top-k 40, prompt "The "):',
  '',
  ...sample.split('\n').map((l) => `> ${l}`),
].join('\n');
console.log(table);
if (write === '1') {
  const readme = fs.readFileSync('README.md', 'utf8');
  const a = '<!-- default-run:begin -->', b = '<!-- default-run:end -->';
  const i = readme.indexOf(a), j = readme.indexOf(b);
  if (i < 0 || j < i) throw new Error(`README.md has no ${a} ... ${b} block`);
  const next = readme.slice(0, i + a.length) + '\n' + table + '\n' + readme.slice(j);
  const tmp = `README.md.tmp-${process.pid}-0`;
  fs.writeFileSync(tmp, next);
  fs.renameSync(tmp, 'README.md');
  console.error('README.md updated');
}
EOF
