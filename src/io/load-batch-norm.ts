/** Loading one layer of a model file into a BatchNorm module, all-or-nothing. */
import type { BatchNorm } from '../batch-norm/module.js';
import { checkEps, checkMomentum } from '../batch-norm/options.js';
import { ShapeError } from '../errors.js';
import { findBatchNorm, type BatchNormLayer, type ModelFile } from './model-file.js';

/** Options of {@link loadBatchNorm}. */
export interface LoadBatchNormOptions {
  /**
   * Also take eps and momentum from the file where it stores them (ONNX nodes; momentum converted
   * to PyTorch's convention, 1 − momentum_onnx). State dicts store neither. Default true.
   */
  conventions?: boolean;
}

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
  bn.assertAlive();
  const found = typeof layer === 'string' ? findBatchNorm(file, layer) : layer;
  if (found.numFeatures !== bn.numFeatures) {
    throw new ShapeError(
      `${bn.name}(${bn.numFeatures}): layer '${found.name}' of the ${file.format} file has ${found.numFeatures} channels (running_mean shape [${found.numFeatures}]), expected [${bn.numFeatures}]`,
    );
  }
  const useConventions = options.conventions ?? true;
  const eps = useConventions && found.eps !== undefined ? checkEps(found.eps, `eps of layer '${found.name}'`) : null;
  const momentum = useConventions && found.momentum !== undefined ? checkMomentum(found.momentum, false, `momentum of layer '${found.name}'`) : null;
  bn.loadStateDict(found.stateDict);
  if (eps !== null) bn.eps = eps;
  if (momentum !== null) bn.momentum = momentum;
}
