/**
 * loadStateDict given what a model file reader returns (its tensor map, the ModelFile, or an object
 * of FileTensors): a StateDictError that points to loadBatchNorm, not "missing [weight, ...]",
 * and nothing written. Both backends.
 */
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, StateDictError, type StateDict } from '../src/index.js';
import { parseModelFile, stateDictTensors, writeSafetensors } from '../src/io/index.js';
import { BACKENDS, caseCounter, contextFor } from './helpers/backends.js';

const count = caseCounter('state-dict input');

describe.each(BACKENDS)('loadStateDict with a model file on %s', (backend) => {
  it('a TensorMap, a ModelFile or FileTensor values point to loadBatchNorm and change nothing', async () => {
    const ctx = await contextFor(backend);
    const bn = new BatchNorm1d(ctx, 3);
    const sd: StateDict = {
      weight: new Float32Array([1, 2, 3]),
      bias: new Float32Array([0.5, 0.25, 0]),
      running_mean: new Float32Array([0.1, 0.2, 0.3]),
      running_var: new Float32Array([1, 1.5, 2]),
      num_batches_tracked: 4,
    };
    const file = parseModelFile(writeSafetensors(stateDictTensors(sd, 'bn1.')));
    const before = await bn.stateDict();
    const fileTensors = Object.fromEntries([...file.tensors].map(([k, v]) => [k.slice('bn1.'.length), v]));
    const attempts: Array<[string, unknown, RegExp]> = [
      ['tensor map', file.tensors, /got a Map of 5 entries .*loadBatchNorm\(bn, file, 'layer\.name'\)/],
      ['model file', file, /got a ModelFile.*loadBatchNorm/],
      ['file tensors', fileTensors, /'weight' is a FileTensor .*loadBatchNorm/],
    ];
    for (const [what, given, message] of attempts) {
      let thrown: unknown = null;
      try {
        bn.loadStateDict(given as StateDict);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, what).toBeInstanceOf(StateDictError);
      expect(String((thrown as Error).message), what).toMatch(message);
      expect(String((thrown as Error).message), what).not.toMatch(/missing \[/);
    }
    expect(await bn.stateDict()).toEqual(before);
    ctx.destroy();
    count(backend);
  });
});
