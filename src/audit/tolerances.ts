// Tolerances. Every comparison checks, element by element,
//     |got − ref| ≤ atolScale·max|ref| + rtol·|ref|
// (atol is a floor relative to the tensor's own scale, so entries that are tiny next to the
// largest one are judged against the tensor's size, as float32 rounding of the big ones is).
//
// The numbers and the reasoning behind each live in one file, native/tolerances.json, which the CUDA
// conformance harness (native/cuda/conformance.cu) reads too; scripts/gen-ops.mjs compiles it into
// src/backend/ops.generated.ts and native/generated/ops_table.h.
import type { Tolerance } from './compare.js';
import { TOLERANCES, type OpFamily } from '../backend/op-table.js';

/** A backend against a float64 fixture, end to end: reference (float64), cpu and cuda (float32). */
export const FIXTURE_TOLERANCE: Record<string, Tolerance> = { ...TOLERANCES.fixture };

/** An operator family of the table (embedding, layernorm, linear, relu, mssa, attention, ...). */
export type OpName = OpFamily;

/** Per operator family and direction: a float32 backend against the float64 reference. */
export const OP_TOLERANCE: Record<OpName, { forward: Tolerance; backward: Tolerance }> = TOLERANCES.operators;
