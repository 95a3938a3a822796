/** Loading one layer of a model file into a BatchNorm module, all-or-nothing. */
import { optionKeys, rejectUnknownKeys } from '../arguments.js';
import type { BatchNorm } from '../batch-norm/module.js';
import type { StateNames } from '../batch-norm/config/conventions.js';
import { checkEps, checkMomentum } from '../batch-norm/config/options.js';
import type { StateDict } from '../batch-norm/state-dict.js';
import { ShapeError } from '../errors.js';
import { findBatchNorm, shortestFloat32, type BatchNormLayer, type ModelFile } from './model-file.js';

/** Options of {@link loadBatchNorm}. */
export interface LoadBatchNormOptions {
  /**
   * Also take eps and momentum from the file where it stores them (ONNX nodes). The momentum is
   * set in the module's own meaning: 1 − momentum_onnx for a module that weights the batch value
   * (PyTorch, the default), the file's number for one that weights the old value
   * (`convention: 'onnx'`, Keras, ...). State dicts store neither. Default true.
   */
  conventions?: boolean;
}

/** The keys of {@link LoadBatchNormOptions}; any other key is rejected. */
export const LOAD_BATCH_NORM_OPTION_KEYS = optionKeys<LoadBatchNormOptions>({ conventions: true });

/**
 * Loads the batch-norm layer `layer` of `file` into `bn` (weight, bias, running_mean, running_var,
 * num_batches_tracked; for ONNX also eps and momentum). Everything is checked first, so a refused
 * load changes nothing.
 *
 * @example
 * const file = await readModelFile(await fetch('resnet.pt'));
 * console.log(file.batchNorms.map((l) => l.name));           // ['bn1', 'layer1.0.bn1', ...]
 * loadBatchNorm(new BatchNorm2d(ctx, 64).eval(), file, 'layer1.0.bn1');
 *
 * @param layer a name from `file.batchNorms` (`'layer1.0.bn1'`, or an ONNX node name), or a layer itself.
 * @throws ModelFileError NOT_FOUND for an unknown layer; ShapeError when the layer's channel
 *   count is not `bn.numFeatures`; StateDictError when affine/trackRunningStats differ from the file.
 */
export function loadBatchNorm(bn: BatchNorm, file: ModelFile, layer: string | BatchNormLayer, options: LoadBatchNormOptions = {}): void {
  rejectUnknownKeys(options, LOAD_BATCH_NORM_OPTION_KEYS, 'loadBatchNorm options');
  bn.assertAlive();
  const found = typeof layer === 'string' ? findBatchNorm(file, layer) : layer;
  if (found.numFeatures !== bn.numFeatures) {
    throw new ShapeError(
      `${bn.name}(${bn.numFeatures}): layer '${found.name}' of the ${file.format} file has ${found.numFeatures} channels (running_mean shape [${found.numFeatures}]), expected [${bn.numFeatures}]`,
    );
  }
  const useConventions = options.conventions ?? true;
  const eps = useConventions && found.eps !== undefined ? checkEps(found.eps, `eps of layer '${found.name}'`) : null;
  // found.momentum is PyTorch's (weight of the batch value); a module whose convention weights the
  // old running value (e.g. `convention: 'onnx'`) takes the file's own number.
  const fileMomentum = bn.momentumMeaning === 'running' && found.onnx ? shortestFloat32(found.onnx.momentum) : found.momentum;
  const momentum =
    useConventions && fileMomentum !== undefined ? checkMomentum(fileMomentum, false, `momentum of layer '${found.name}'`) : null;
  bn.loadStateDict(renameStateDict(found.stateDict, bn.convention.stateNames));
  if (eps !== null) bn.eps = eps;
  if (momentum !== null) bn.momentum = momentum;
}

/**
 * A layer's PyTorch-keyed values under the module's own state names (Keras gamma/beta, ONNX
 * scale/B, ...). num_batches_tracked goes only to conventions that keep it.
 */
function renameStateDict(sd: StateDict, names: StateNames): StateDict {
  const out: StateDict = {};
  const put = (name: string | null, value: StateDict[string] | undefined): void => {
    if (name !== null && value !== undefined) out[name] = value;
  };
  put(names.weight, sd['weight']);
  put(names.bias, sd['bias']);
  put(names.runningMean, sd['running_mean']);
  put(names.runningVar, sd['running_var']);
  put(names.tracked, sd['num_batches_tracked']);
  return out;
}
