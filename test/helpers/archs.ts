// The architectures the generic model tests run on: every registered one, which here means the
// package's built-in three plus a toy registered for the tests (test/helpers/mlp-only.ts), the
// one line a new architecture needs besides its own file. The production registry is untouched:
// a test file that does not import this helper sees the built-in architectures only.
import { archNames, isArch, registerArchitecture } from '../../src/model/archs.js';
import type { Arch } from '../../src/model/config.js';
import { mlpOnly } from './mlp-only.js';

if (!isArch(mlpOnly.name)) registerArchitecture(mlpOnly);

/** Every registered architecture (typed as Arch for configs: a test-registered name is not in the built-in union). */
export const ARCHS_UNDER_TEST = archNames() as Arch[];
