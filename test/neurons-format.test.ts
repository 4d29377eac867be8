// The JSON of OpenAI's dataclasses as written here: exact keys, floats that Python reads as floats,
// non-finite numbers as null, and tokens with quotes, newlines and non-ASCII text round-tripping.
import { describe, it, expect } from 'vitest';
import { floatJson, neuronRecordJson, parseNeuronRecord, type NeuronRecord } from '../src/neurons/format.js';

describe('NeuronRecord JSON', () => {
  it('floats: integral values keep .0, NaN/Inf become null, others print as the shortest double', () => {
    expect([0, -0, 3, 1e21, 0.1, 1e-7, NaN, Infinity, null].map(floatJson)).toEqual(['0.0', '0.0', '3.0', '1e+21', '0.1', '1e-7', 'null', 'null', 'null']);
  });

  it('exactly the dataclass fields, dataclass_name on every object, and a lossless round trip', () => {
    const rec: NeuronRecord = {
      neuron_id: { layer_index: 2, neuron_index: 7 },
      random_sample: [{ tokens: [' "quoted"', '\n', 'Ünïcödé', '\\'], activations: [0, 0.25, -1.5, 3] }],
      random_sample_by_quantile: [[{ tokens: ['a'], activations: [NaN] }]],
      quantile_boundaries: [0, 0.5],
      mean: 0.125,
      variance: 2,
      skewness: NaN,
      kurtosis: 3.5,
      most_positive_activation_records: [{ tokens: ['x', 'y'], activations: [1.25, 0] }],
    };
    const line = neuronRecordJson(rec);
    const o = JSON.parse(line) as Record<string, unknown>;
    expect(Object.keys(o)).toEqual([
      'dataclass_name',
      'neuron_id',
      'random_sample',
      'random_sample_by_quantile',
      'quantile_boundaries',
      'mean',
      'variance',
      'skewness',
      'kurtosis',
      'most_positive_activation_records',
    ]);
    expect(o.neuron_id).toEqual({ dataclass_name: 'NeuronId', layer_index: 2, neuron_index: 7 });
    expect(Object.keys((o.random_sample as object[])[0])).toEqual(['dataclass_name', 'tokens', 'activations']);
    expect(line).toContain('"skewness":null');
    expect(line).toContain('"activations":[0.0,0.25,-1.5,3.0]');
    expect(line).not.toMatch(/NaN|Infinity/);
    const back = parseNeuronRecord(line, 'test');
    expect(back.random_sample).toEqual(rec.random_sample);
    expect(back.random_sample_by_quantile![0][0].activations[0]).toBeNaN();
    expect(back.skewness).toBeNull();
    expect(back.most_positive_activation_records).toEqual(rec.most_positive_activation_records);
  });

  it('a malformed line is a DataError naming where', () => {
    expect(() => parseNeuronRecord('{"dataclass_name":"NeuronRecord"', 'f.jsonl:3')).toThrow(/f\.jsonl:3: not valid JSON/);
    expect(() => parseNeuronRecord('{"dataclass_name":"Other"}', 'f.jsonl:4')).toThrow(/f\.jsonl:4: dataclass_name is 'Other'/);
    const bad = neuronRecordJson({
      neuron_id: { layer_index: 0, neuron_index: 0 },
      random_sample: [],
      random_sample_by_quantile: null,
      quantile_boundaries: null,
      mean: 0,
      variance: 0,
      skewness: 0,
      kurtosis: 0,
      most_positive_activation_records: [{ tokens: ['a', 'b'], activations: [1] }],
    });
    expect(() => parseNeuronRecord(bad, 'f.jsonl:5')).toThrow(/f\.jsonl:5 most_positive_activation_records\[0\]: 2 tokens but 1 activations/);
  });
});
