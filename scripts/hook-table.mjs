#!/usr/bin/env node
// Prints the README's hook table (section "Hooks"), folded from the blocks' declarations of the
// built-in architectures (src/model/hooks.ts hookTable); test/hooks.test.ts checks the README
// against it. Run after `npm run build`:   node scripts/hook-table.mjs
import { hookTable } from '../dist/model/hooks.js';
import { architecture, BUILTIN_ARCHS } from '../dist/model/archs.js';

const lines = ['| name | architectures | shape | tensor |', '|---|---|---|---|'];
for (const r of hookTable(BUILTIN_ARCHS.map(architecture))) lines.push(`| \`${r.name}\` | ${r.archs} | ${r.shape} | ${r.doc} |`);
console.log(lines.join('\n'));
