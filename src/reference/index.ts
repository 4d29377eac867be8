// The float64 reference operators, forward and backward (the ground truth every backend is tested against).
export * from './embedding.js';
export * from './layernorm.js';
export * from './linear.js';
export * from './elementwise.js';
export * from './mssa.js';
export * from './ista.js';
export * from './loss.js';
export * from './adamw.js';
