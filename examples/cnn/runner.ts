/** What both backends of the CNN example provide. */

/** `'bn-layers'`: conv → library BatchNorm2d → ReLU; `'folded'`: BN folded into the convs. */
export type CnnVariant = 'bn-layers' | 'folded';

/** One network instance for one fixed batch of images, allocated once. */
export interface CnnRunner {
  /** Runs the batch once and returns the logits, N × classes. */
  logits(): Promise<Float32Array>;
  /** Runs the batch `reps` times back to back and returns the seconds taken (work finished). */
  time(reps: number): Promise<number>;
  destroy(): void;
}
